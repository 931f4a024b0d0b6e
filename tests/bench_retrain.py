"""Benchmark of the correction loop (issue 12): correct meeting A of a group of people (its reference
labels stand in for the user's corrections), retrain with the defaults (`pixit train --init M`, the
same function as the app's Retrain button), and score meeting B of the same people before and
after, with the time retraining took. Several speaker groups come from `pixit synth --same-speakers`
(voices and a synthesiser mix the shipped model has not heard together, in rooms of their own), and
the real two-speaker sample in assets/real gives a real-voice row: retrained on its first 20 s,
scored on the rest.

    python tests/bench_retrain.py [--groups 3] [--duration 120] [--model default] [--out DIR]
                                  [--train-args "--max-steps 40"]

Prints one row per group and the mean relative DER change; writes DIR/bench_retrain.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.annotation import read_rttm, read_uem  # noqa: E402
from core.metrics import diarization_error  # noqa: E402
from core.pipeline import Pipeline  # noqa: E402
from core.pipeline.params import PipelineParams  # noqa: E402

PIXIT = [sys.executable, "-m", "core.cli"]


def der_of(model: str, audio: Path, rttm: Path, uem: Path | None, uri: str) -> dict:
    """DER (and its parts, in %) of `model` with its own params.json on one recording."""
    pipe = Pipeline(model, PipelineParams.for_model(model), device="cpu")
    hyp = pipe(str(audio), uri=uri, return_sources=False).annotation
    ref = read_rttm(rttm)[uri]
    scored = read_uem(uem)[uri] if uem else None
    r = diarization_error(ref, hyp, uem=scored)
    total = float(r["total"]) or 1e-9
    return {"der": round(100 * r["der"], 2), "false_alarm": round(100 * r["false_alarm"] / total, 2),
            "missed": round(100 * r["missed_detection"] / total, 2),
            "confusion": round(100 * r["confusion"] / total, 2), "speakers_found": len(hyp.labels())}


def retrain(model: str, manifest: Path, run: Path, extra: list[str]) -> float:
    """`pixit train --init model` with its defaults; returns the wall time in seconds."""
    started = time.perf_counter()
    cmd = PIXIT + ["train", "--init", model, "--train", str(manifest), "--out", str(run), "--quiet", *extra]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"retraining failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "", flush=True)
    return time.perf_counter() - started


def synth_group(out: Path, seed: int, duration: float, speakers: int) -> Path:
    if not (out / "manifest.csv").is_file():
        subprocess.run(PIXIT + ["synth", "--out", str(out), "--num-meetings", "2", "--duration", str(duration),
                                "--speakers", str(speakers), "--same-speakers", "--engines", "flite,festival,espeak",
                                "--acoustics", "room", "--seed", str(seed), "--quiet", "--no-sources"],
                       cwd=ROOT, check=True, capture_output=True)
    lines = (out / "manifest.csv").read_text().splitlines()
    (out / "A.csv").write_text("\n".join([lines[0], lines[1]]) + "\n")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=3)
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--speakers", type=int, default=3)
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_retrain"))
    ap.add_argument("--train-args", default="", help="extra arguments for pixit train")
    ap.add_argument("--no-real", action="store_true")
    args = ap.parse_args()
    extra = shlex.split(args.train_args)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for g in range(args.groups):
        d = synth_group(args.out / f"group{g}", 100 + g, args.duration, args.speakers)
        b = "meeting001"
        before = der_of(args.model, d / f"{b}.wav", d / f"{b}.rttm", d / f"{b}.uem", b)
        run = args.out / f"run{g}"
        seconds = retrain(args.model, d / "A.csv", run, extra)
        after = der_of(str(run / "model"), d / f"{b}.wav", d / f"{b}.rttm", d / f"{b}.uem", b)
        rows.append({"group": f"synth group {g}", "before": before, "after": after, "retrain_s": round(seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    if not args.no_real:
        real = ROOT / "assets" / "real"
        d = args.out / "real"
        d.mkdir(exist_ok=True)
        (d / "train.uem").write_text("sample 1 0.000 20.000\n")
        (d / "test.uem").write_text("sample 1 20.000 30.000\n")
        (d / "train.csv").write_text(f"audio,rttm,uem\n{real / 'sample.wav'},{real / 'sample.rttm'},{d / 'train.uem'}\n")
        before = der_of(args.model, real / "sample.wav", real / "sample.rttm", d / "test.uem", "sample")
        seconds = retrain(args.model, d / "train.csv", d / "run", extra)
        after = der_of(str(d / "run" / "model"), real / "sample.wav", real / "sample.rttm", d / "test.uem", "sample")
        rows.append({"group": "real sample (last 10 s)", "before": before, "after": after, "retrain_s": round(seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'group':28s} {'DER before':>10s} {'DER after':>10s} {'change':>8s} {'retrain':>8s}")
    for r in rows:
        change = (r["after"]["der"] - r["before"]["der"]) / max(r["before"]["der"], 1e-9)
        r["relative_change"] = round(change, 3)
        print(f"{r['group']:28s} {r['before']['der']:9.1f}% {r['after']['der']:9.1f}% {100 * change:+7.1f}% "
              f"{r['retrain_s']:7.0f}s")
    synth = [r["relative_change"] for r in rows if r["group"].startswith("synth")]
    if synth:
        print(f"mean relative DER change on the next meeting: {100 * sum(synth) / len(synth):+.1f}%")
    (args.out / "bench_retrain.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
