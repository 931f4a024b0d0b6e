"""CPU speed of the SSL forward before / after pruning, measured in the same run.

`bench_ssl(before, after)` times both transformers models on the same random audio (median of
`repeats` runs after a warm-up) and returns the ratio. `set_uniform_masks(gates, sparsity)`
gives gates a deterministic mask that keeps the same fraction of every unit group (random
units), chosen so the hard sparsity hits the target: a stand-in for a trained pruning run when
only the architecture matters (speed). `wavlm_base_config()` is the WavLM Base(+) shape.

Real WavLM (no download here): put the Hugging Face folder (config.json + model.safetensors /
pytorch_model.bin) somewhere local and run
    python -m core.commands.prune --bench --ssl /path/to/wavlm-base-plus --sparsity 0.8
which loads it with AutoModel.from_pretrained(local_files_only=True) instead of the random
Base-shaped model (the speed of a pruned model depends only on its shape, not on the weights).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from core.pruning.gates import PruningGates


def wavlm_base_config(num_layers: int = 12, hidden: int = 768, heads: int = 12, intermediate: int = 3072):
    """WavLM Base(+) architecture (94.4M parameters at the defaults), no dropout / layerdrop."""
    from transformers import WavLMConfig

    return WavLMConfig(hidden_size=hidden, num_hidden_layers=num_layers, num_attention_heads=heads,
                       intermediate_size=intermediate, layerdrop=0.0, mask_time_prob=0.0,
                       hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0)


@torch.no_grad()
def set_uniform_masks(gates: PruningGates, sparsity: float, target: str = "params", seed: int = 0,
                      conv_exponent: float = 1.0) -> float:
    """Set every gate to keep the same fraction q of its units (random choice, soft value 1), with
    q found by bisection so that the hard sparsity is `sparsity`; returns the sparsity reached.
    conv_exponent > 1 prunes conv channels harder than heads / FFN units (q ** exponent)."""
    gen = torch.Generator().manual_seed(seed)
    order = {k: torch.randperm(g.n, generator=gen) for k, g in gates.gates.items()}

    def apply(q: float) -> float:
        for k, g in gates.gates.items():
            frac = q ** conv_exponent if k.startswith("conv") else q
            keep = max(1, int(round(frac * g.n))) if k.startswith(("conv", "attlayer", "ffnlayer")) else int(round(frac * g.n))
            la = torch.full((g.n,), -30.0)
            la[order[k][:keep]] = 30.0
            g.log_alpha.copy_(la)
        return gates.hard_sparsity(target)

    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if apply(mid) > sparsity:
            lo = mid
        else:
            hi = mid
    return apply(hi)


@torch.no_grad()
def time_forward(model: nn.Module, seconds: float = 10.0, batch: int = 1, repeats: int = 5, warmup: int = 1,
                 seed: int = 0) -> float:
    """Median wall time (s) of model(waveform) for a (batch, seconds * 16 kHz) input."""
    model.eval()
    x = torch.randn(batch, int(seconds * 16000), generator=torch.Generator().manual_seed(seed))
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_ssl(before: nn.Module, after: nn.Module, seconds: float = 10.0, batch: int = 1, repeats: int = 5,
              threads: int | None = None) -> dict:
    """SSL forward time before / after pruning on this CPU and the speed-up (before / after).
    Runs are interleaved so that load from other processes hits both alike."""
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        time_forward(before, seconds, batch, repeats=1)
        time_forward(after, seconds, batch, repeats=1)
        tb, ta = [], []
        for _ in range(repeats):
            tb.append(time_forward(before, seconds, batch, repeats=1, warmup=0))
            ta.append(time_forward(after, seconds, batch, repeats=1, warmup=0))
    finally:
        torch.set_num_threads(old_threads)
    b, a = statistics.median(tb), statistics.median(ta)
    return {
        "seconds_audio": seconds, "batch": batch, "threads": threads or old_threads,
        "before_s": b, "after_s": a, "speedup": b / a,
        "params_before": sum(p.numel() for p in before.parameters()),
        "params_after": sum(p.numel() for p in after.parameters()),
    }
