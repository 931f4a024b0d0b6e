"""Benchmark: time and peak memory of `pixit tune` on a long dev recording, source cache bounded
(the default budget) against every source cached (what tune did before issue 18).

    OMP_NUM_THREADS=1 .venv/bin/python tests/bench_tune_long.py [--minutes 20 60] [--budget 20] [--model default]

Writes one synthetic meeting per duration (harmonic "voices" taking turns, ground-truth sources,
so the leakage collar is tuned and sources are needed), runs `pixit tune` on it as a subprocess
twice, with --params setting source_cache_minutes to --budget (bounded) and to 1e6 (unbounded),
and prints wall time, peak RSS of the tune process and the ratios bounded / unbounded. A dev
recording shorter than the budget is cached either way: use --budget below the duration to see
the bound on a short run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_tune(dev: Path, model: str, params: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one `pixit tune` process (a fresh child: ru_maxrss is its own)."""
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    cmd = [sys.executable, "-m", "core.cli", "tune", "--dev", str(dev), "--model", model, "--out", str(out),
           "--device", "cpu", "--params", str(params), "--thresholds", "0.5", "--clustering-thresholds", "0.5,0.8"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, cwd=ROOT, env=env)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"pixit tune failed: {proc.stderr.strip().splitlines()[-1:]}")
    return elapsed, int(proc.stdout.strip().splitlines()[-1]) / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[20.0, 60.0])
    ap.add_argument("--budget", type=float, default=20.0, help="source_cache_minutes of the bounded run")
    ap.add_argument("--model", default="default")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import write_meeting

    from core.pipeline import PipelineParams

    start = PipelineParams.for_model(args.model).to_dict()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for minutes in args.minutes:
            dev = tmp / f"dev{minutes:g}"
            write_meeting(dev, "long", duration=60 * minutes, num_speakers=3, seed=1)
            row = {"minutes": minutes, "budget": args.budget}
            for name, budget in (("bounded", args.budget), ("unbounded", 1e6)):
                params = tmp / f"{name}.json"
                params.write_text(json.dumps({**start, "source_cache_minutes": budget}))
                row[f"{name}_s"], row[f"{name}_mb"] = run_tune(dev, args.model, params, tmp / f"{name}-out.json")
            rows.append(row)
            print(f"{minutes:g} min dev recording: bounded (budget {args.budget:g} min) {row['bounded_s']:.1f} s, "
                  f"peak {row['bounded_mb']:.0f} MB; unbounded {row['unbounded_s']:.1f} s, peak {row['unbounded_mb']:.0f} MB; "
                  f"time x{row['bounded_s'] / row['unbounded_s']:.2f}, memory x{row['bounded_mb'] / row['unbounded_mb']:.2f}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
