"""Architecture choice by measured quality per CPU-second: equal CPU-time PixIT runs, one per candidate.

    python assets/recipes/arch_sweep.py TRAIN_MANIFEST DEV_MANIFEST OUT_DIR [--cpu-seconds 300] [--only a,b]

Each candidate trains with the default-model recipe's settings (4 pairs x 3 s, lr 1e-3, lambda 0.5,
supervised SI-SDR weight 0.5, 32 fixed validation pairs every 40 steps) until this process has
used `--cpu-seconds` of CPU time (time.process_time, so other jobs on a shared machine do not
bias it; one torch thread), then the best validation row is reported beside the inference cost
of the model (CPU seconds to run 60 s of audio as 5 s windows at a 1 s step, measured here in the
same process for every candidate, and its ratio to the shipped model's architecture). Candidates
are trained from scratch, except `warm`, which continues the shipped model's weights.
Writes OUT_DIR/sweep.json (rows of candidates not rerun are kept) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.errors import Cancelled  # noqa: E402
from core.models import ToTaToNet, ToTaToNetConfig, count_parameters, resolve_model_path  # noqa: E402
from core.training import TrainConfig, train  # noqa: E402

SHIPPED = json.loads((resolve_model_path("default") / "config.json").read_text())
BASE = {k: v for k, v in SHIPPED.items() if k not in ("format", "version")}
DPRNN_SMALL = {"bn_chan": 64, "hid_size": 64, "n_repeats": 3}
CANDIDATES = {
    "dprnn-s64": BASE,
    "dprnn-s32": {**BASE, "n_filters": 64, "kernel_size": 64, "stride": 32, "diar_pool": 4,
                  "masker_params": {**DPRNN_SMALL, "chunk_size": 100, "hop": 50}},
    "dprnn-s16": {**BASE, "n_filters": 64, "kernel_size": 32, "stride": 16, "diar_pool": 8,
                  "masker_params": {**DPRNN_SMALL, "chunk_size": 100, "hop": 50, "n_repeats": 2}},
    "spgm-s64": {**BASE, "masker": "spgm",
                 "masker_params": {"bn_chan": 64, "chunk_size": 50, "hop": 25, "n_repeats": 2, "intra_layers": 2,
                                   "n_heads": 4, "ffn": 256}},
    "convtasnet-s64": {**BASE, "masker": "convtasnet",
                       "masker_params": {"bn_chan": 64, "hid_chan": 256, "skip_chan": 64, "n_blocks": 6, "n_repeats": 2}},
    "warm": None,  # the shipped model's weights, trained on
}


def inference_cpu_seconds(config: dict, seconds: float = 60.0) -> float:
    """CPU time of the model alone on `seconds` of audio as 5 s windows every 1 s, batch 8."""
    model = ToTaToNet(ToTaToNetConfig.from_dict(config)).eval()
    windows = torch.randn(int(seconds), 5 * 16000) * 0.05
    with torch.inference_mode():
        model(windows[:2])  # warm-up
        start = time.process_time()
        for batch in windows.split(8):
            model(batch)
    return time.process_time() - start


def best_row(metrics: Path) -> dict:
    with open(metrics) as handle:
        rows = [r for r in csv.DictReader(handle) if r["val_loss"]]
    if not rows:
        return {}
    best = min(rows, key=lambda r: float(r["val_loss"]))
    return {"step": int(best["step"]), "steps": int(rows[-1]["step"]), "val_loss": float(best["val_loss"]),
            "val_mom_sisdri": float(best["val_mom_sisdri"] or "nan"), "val_der": float(best["val_der"] or "nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train")
    parser.add_argument("dev")
    parser.add_argument("out", type=Path)
    parser.add_argument("--cpu-seconds", type=float, default=300.0)
    parser.add_argument("--only", default=",".join(CANDIDATES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    shipped_cost = inference_cpu_seconds(BASE)
    names = args.only.split(",")
    previous = args.out / "sweep.json"  # rows of earlier invocations are kept (one sweep in several sittings)
    results = [r for r in (json.loads(previous.read_text()) if previous.is_file() else []) if r["name"] not in names]
    for name in names:
        config = CANDIDATES[name]
        settings = TrainConfig(max_steps=10**6, batch_size=4, chunk_duration=3.0, lr=1e-3, lambda_=0.5, sup_weight=0.5,
                               val_pairs=32, val_every=40, accelerator="cpu", seed=0)
        start = time.process_time()
        try:
            train(args.train, args.out / name, dev_manifest=args.dev, config=settings,
                  init="default" if config is None else None, model_config=config,
                  should_stop=lambda: time.process_time() - start > args.cpu_seconds)
        except Cancelled:
            pass
        used = time.process_time() - start
        arch = BASE if config is None else config
        cost = inference_cpu_seconds(arch)
        row = {"name": name, "cpu_s": round(used, 1), "parameters": count_parameters(ToTaToNet(ToTaToNetConfig.from_dict(arch))),
               "inference_cpu_s_per_min": round(cost, 2), "inference_vs_shipped": round(cost / shipped_cost, 2),
               **best_row(args.out / name / "metrics.csv")}
        results.append(row)
        (args.out / "sweep.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(row), flush=True)
    print("| candidate | parameters | steps in budget | best val loss | MoM SI-SDRi | local DER | inference CPU s / min audio (vs shipped) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        fmt = lambda v, f: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, f)  # noqa: E731
        print(f"| {r['name']} | {r['parameters']:,} | {r.get('steps', 0)} | {fmt(r.get('val_loss'), '.3f')} | "
              f"{fmt(r.get('val_mom_sisdri'), '+.2f')} dB | {fmt(100 * r['val_der'] if 'val_der' in r else None, '.1f')} % | "
              f"{r['inference_cpu_s_per_min']:.2f} ({r['inference_vs_shipped']:.2f}x) |")


if __name__ == "__main__":
    main()
