"""Benchmark: `pixit evaluate` on RTTMs of increasing size (issue 18: 16 s for 8 000 lines before).

    OMP_NUM_THREADS=1 .venv/bin/python tests/bench_rttm_scale.py [--lines 2000 4000 8000 100000] [--old-up-to 8000]

For each size, a reference and a hypothesis RTTM of one recording (4 speakers each, turns of
0.3-3 s with overlaps and gaps) are written and timed in this process, stage by stage: reading
(core.annotation.read_rttm, both files), scoring with core.der (what `evaluate` runs), and scoring
with pyannote.metrics' DiarizationErrorRate (the old path, quadratic: only up to --old-up-to lines).
Printed: seconds per stage, the old/new ratio at the same size, and each stage's time divided by
what linear scaling from the smallest size predicts (1.0 = linear).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def write_rttm(path: Path, lines: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t, out = 0.0, []
    for _ in range(lines):
        d = rng.uniform(0.3, 3.0)
        out.append(f"SPEAKER big 1 {t:.3f} {d:.3f} <NA> <NA> spk{rng.integers(0, 4)} <NA> <NA>\n")
        t += d * rng.uniform(0.5, 1.2)
    path.write_text("".join(out))


def _timed(fn):
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, nargs="+", default=[2000, 4000, 8000, 16000, 100000])
    ap.add_argument("--old-up-to", type=int, default=8000, help="largest size also scored the old way")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)

    from pyannote.metrics.diarization import DiarizationErrorRate

    from core.annotation import read_rttm
    from core.metrics import _default_uem, diarization_error

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.lines):
            ref_path, hyp_path = Path(tmp) / "ref.rttm", Path(tmp) / "hyp.rttm"
            write_rttm(ref_path, n, 1)
            write_rttm(hyp_path, n, 2)
            (ref, hyp), t_read = _timed(lambda: (read_rttm(ref_path)["big"], read_rttm(hyp_path)["big"]))
            new, t_new = _timed(lambda: diarization_error(ref, hyp))
            row = {"lines": n, "read_s": t_read, "der_s": t_new, "old_der_s": None}
            if n <= args.old_up_to:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    old, t_old = _timed(lambda: DiarizationErrorRate().compute_components(ref, hyp, uem=_default_uem(ref, hyp)))
                assert abs(old["total"] - new["total"]) < 1e-3 and abs(old["confusion"] - new["confusion"]) < 1e-3
                row["old_der_s"] = t_old
            rows.append(row)
            base = rows[0]
            linear = n / base["lines"]
            print(f"{n:>7} lines: read {t_read:6.2f} s (x{t_read / base['read_s'] / linear:4.2f} of linear), "
                  f"DER {t_new:6.3f} s (x{t_new / base['der_s'] / linear:4.2f} of linear)"
                  + (f", pyannote.metrics DER {row['old_der_s']:6.2f} s = {row['old_der_s'] / t_new:5.0f}x slower"
                     f" (x{row['old_der_s'] / base['old_der_s'] / linear:4.2f} of linear)" if row["old_der_s"] else ""),
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
