"""Measures the factors in core/memory.py: the real resident-memory growth of one training step and of
one inference batch, each in a fresh process, against what the fake-tensor trace predicts with factor
1. Prints one row per (model, batch, chunk) and the ratio real / traced of the part that grows with
the batch; TRAIN_FACTOR / INFER_FACTOR in core/memory.py are the largest ratio seen per masker,
rounded up.

    .venv/bin/python tests/bench_memory_estimate.py            # all configurations (a few minutes)
    .venv/bin/python tests/bench_memory_estimate.py dprnn      # only names containing 'dprnn'
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CONFIGS = {
    "default-dprnn": json.loads((REPO / "assets" / "models" / "default" / "config.json").read_text()),
    "paper-dprnn": {},
    "convtasnet": {"masker": "convtasnet", "n_filters": 64, "kernel_size": 32, "stride": 16},
    "sepformer": {"masker": "sepformer", "n_filters": 64, "kernel_size": 32, "stride": 16},
    "spgm": {"masker": "spgm", "n_filters": 64, "kernel_size": 32, "stride": 16},
}
CASES = [  # (config, training pairs, chunk seconds, inference windows)
    ("default-dprnn", 1, 5.0, 32), ("default-dprnn", 4, 3.0, 8),
    ("paper-dprnn", 1, 3.0, 8),
    ("convtasnet", 1, 3.0, 8), ("sepformer", 1, 3.0, 8), ("spgm", 1, 3.0, 8),
]

CHILD = r"""
import json, resource, sys, torch
torch.set_num_threads(1)
from core.models.totatonet import ToTaToNet, ToTaToNetConfig
from core.training import step_losses
cfg = ToTaToNetConfig.from_dict({k: v for k, v in json.loads(sys.argv[1]).items() if k not in ("format", "version")})
pairs, secs, windows, what = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
model = ToTaToNet(cfg)
T = int(secs * cfg.sample_rate)
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if what == "train":
    k, f = cfg.n_sources, model.num_frames(T)
    batch = {"mix1": torch.randn(pairs, T), "mix2": torch.randn(pairs, T), "y1": torch.zeros(pairs, k, f),
             "y2": torch.zeros(pairs, k, f), "y_mom": torch.zeros(pairs, k, f)}
    opt = torch.optim.Adam(model.parameters())
    before = rss()
    for _ in range(2):
        out, _ = step_losses(model.train(), batch, 0.5)
        out.loss.backward(); opt.step(); opt.zero_grad()
else:
    model.eval()
    x = torch.randn(windows, int(5.0 * cfg.sample_rate))
    before = rss()
    with torch.inference_mode():
        model(x); model(x)
print(rss() - before)
"""


def main(select: str = "") -> None:
    from core.memory import GB, inference_estimate, training_estimate
    import core.memory as memory
    from core.models.totatonet import ToTaToNet, ToTaToNetConfig

    memory.TRAIN_FACTOR = {k: 1.0 for k in memory.TRAIN_FACTOR}  # raw traces
    memory.INFER_FACTOR = {k: 1.0 for k in memory.INFER_FACTOR}
    print(f"{'config':<15} {'pairs':>5} {'chunk':>5} {'train real':>10} {'traced':>8} {'ratio':>6} | "
          f"{'windows':>7} {'infer real':>10} {'traced':>8} {'ratio':>6}")
    for name, pairs, secs, windows in CASES:
        if select not in name:
            continue
        raw = {k: v for k, v in CONFIGS[name].items() if k not in ("format", "version")}
        config = ToTaToNetConfig.from_dict(raw)
        real = {}
        for what in ("train", "infer"):
            proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(raw), str(pairs), str(secs), str(windows), what],
                                  capture_output=True, text=True, cwd=REPO, check=True)
            real[what] = int(proc.stdout.strip().splitlines()[-1])
        train = training_estimate(config, pairs, secs)
        infer = inference_estimate(ToTaToNet(config), windows, int(5.0 * config.sample_rate))
        # the factor scales the part that grows with the batch (the fixed part is counted exactly)
        ratio_train = (real["train"] - train.fixed) / (train.total - train.fixed)
        print(f"{name:<15} {pairs:>5} {secs:>5.1f} {real['train'] / GB:>9.2f}G {train.total / GB:>7.2f}G "
              f"{ratio_train:>6.2f} | {windows:>7} {real['infer'] / GB:>9.2f}G {infer.total / GB:>7.2f}G "
              f"{real['infer'] / infer.total:>6.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
