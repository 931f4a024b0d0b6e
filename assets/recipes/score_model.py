"""Score a model on the default-model recipe's evaluation sets with the real CLI.

    python assets/recipes/score_model.py MODEL WORK OUT.json [--sets heldout,test_espeak,real,demo] [--params P]

For each set: `pixit separate` (the model's own params.json unless --params) then `pixit evaluate`
(collar 0, overlap scored) -> DER with false alarm / missed / confusion, and, where the set has
ground-truth sources, the SI-SDR improvement of the stitched speaker tracks over the mixture (best
one-to-one mapping; a reference speaker without a track is counted as unmatched). Sets: WORK/<name>/
manifest.csv for synthetic ones; `real` = assets/real/sample.wav, `demo` = assets/demo/demo000.wav.
Writes OUT.json and prints one markdown table row per set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.audio import load_audio  # noqa: E402
from core.data import read_manifest  # noqa: E402
from core.metrics import separation_scores  # noqa: E402


def pixit(*args: str) -> str:
    exe = [sys.executable, "-m", "core.cli"]
    proc = subprocess.run([*exe, *args], capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
    if proc.returncode != 0:
        raise SystemExit(f"pixit {args[0]} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def si_sdr_improvement(manifest: Path, hyp: Path) -> dict:
    values, unmatched, refs = [], 0, 0
    for rec in read_manifest(manifest):
        if rec.sources is None:
            return {}
        mix = load_audio(rec.audio)
        tracks = sorted((hyp / rec.uri).glob("*.wav"))
        ref = np.stack([load_audio(rec.source_path(label)) for label in rec.labels], axis=1)
        refs += len(rec.labels)
        if not tracks:
            unmatched += len(rec.labels)
            continue
        est = np.stack([load_audio(t) for t in tracks], axis=1)
        scores = separation_scores(est, ref, mix, [t.stem for t in tracks], rec.labels)
        values += [p["si_sdr_i"] for p in scores["pairs"]]
        unmatched += len(scores["unmatched_references"])
    return {"si_sdr_i": float(np.mean(values)) if values else float("nan"), "matched": len(values), "speakers": refs,
            "unmatched": unmatched}


def score(model: str, work: Path, name: str, params: str | None, extra: list[str]) -> dict:
    variant = "_".join(a.strip("-") for a in extra) or "plain"  # runs with other options keep their own outputs
    out = work / "eval" / Path(model).name / variant / name
    common = ["--model", model, "--device", "cpu", "--overwrite", "--quiet", *extra] + (["--params", params] if params else [])
    if name in ("real", "demo"):
        audio = ROOT / ("assets/real/sample.wav" if name == "real" else "assets/demo/demo000.wav")
        pixit("separate", str(audio), "--out", str(out), *common)
        reference, uem = audio.with_suffix(".rttm"), audio.with_suffix(".uem")
        manifest = audio.parent / "manifest.csv" if name == "demo" else None
    else:
        manifest = work / name / "manifest.csv"
        pixit("separate", *[str(r.audio) for r in read_manifest(manifest)], "--out", str(out), *common)
        reference, uem = work / name, work / name
    args = ["evaluate", "--reference", str(reference), "--hypothesis", str(out), "--json"]
    if Path(uem).exists():
        args += ["--uem", str(uem)]
    total = json.loads(pixit(*args))["total"]
    row = {"set": name, "der": total["der"], "false_alarm": total["false_alarm_rate"],
           "missed": total["missed_detection_rate"], "confusion": total["confusion_rate"], "speech_s": total["total"]}
    if manifest is not None:
        row.update(si_sdr_improvement(manifest, out))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("work", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sets", default="heldout,test_espeak,real,demo")
    parser.add_argument("--params")
    parser.add_argument("--separate-args", default="", help="extra `pixit separate` options, e.g. '--vad silero'")
    args = parser.parse_args()
    rows = [score(args.model, args.work, name, args.params, args.separate_args.split())
            for name in args.sets.split(",") if name]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "params": args.params, "sets": rows}, indent=2))
    for r in rows:
        sdr = f"{r['si_sdr_i']:+.2f} dB ({r['matched']}/{r['speakers']} speakers)" if "si_sdr_i" in r else ""
        print(f"| {r['set']} | {100 * r['der']:.1f} % | {100 * r['false_alarm']:.1f} % | {100 * r['missed']:.1f} % "
              f"| {100 * r['confusion']:.1f} % | {sdr} |", flush=True)


if __name__ == "__main__":
    main()
