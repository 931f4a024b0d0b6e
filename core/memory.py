"""Will it fit? Peak-memory estimates for a training step and an inference batch, checked against
what the device has free *before* the work starts, so that a user reads one line naming the setting
to lower instead of "Killed" after minutes.

An estimate traces one step with fake tensors (torch's FakeTensorMode: shapes only, nothing is
allocated or computed; a few seconds even for a paper-size model) under a dispatch mode that adds up
the storages the operators create and free, and keeps the peak. What such a trace cannot see
(buffers inside one kernel such as the CPU LSTM's, allocator slack) is one factor per masker and
device type, measured once against the real resident-memory growth of the same step by
`tests/bench_memory_estimate.py`. Tracing is thread-safe: the app traces in worker threads while
other sessions run their models.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from core.errors import PixitError

log = logging.getLogger(__name__)

GB = 1024**3
SAFETY = 0.9  # use at most this share of what is free

# real / traced growth of the part that grows with the batch, per masker: the largest ratio that
# tests/bench_memory_estimate.py measured on this project's 2-core CPU machine (torch 2.11, 2026-12-03),
# rounded up (training: dprnn 3.0-3.95, convtasnet 1.8, sepformer 1.6, spgm 2.0; inference: dprnn
# 1.4-2.0, convtasnet 1.7, sepformer 1.6, spgm 1.1); a masker not listed gets the largest factor
TRAIN_FACTOR = {"dprnn": 4.0, "convtasnet": 1.9, "sepformer": 1.7, "spgm": 2.0}
INFER_FACTOR = {"dprnn": 2.1, "convtasnet": 1.8, "sepformer": 1.7, "spgm": 1.6}
GPU_FACTOR = 1.25  # NOT measured (no GPU here): the trace plus caching-allocator slack


@dataclass
class Estimate:
    """Peak memory of one step: `fixed` (weights, gradients, optimizer state) + `per_item` x items."""

    fixed: int
    per_item: int
    items: int

    @property
    def total(self) -> int:
        return self.fixed + self.per_item * self.items

    def max_items(self, budget: int) -> int:
        """Largest number of items (pairs, windows) whose step fits in `budget` bytes."""
        if self.per_item <= 0:
            return self.items
        return max(0, int((budget - self.fixed) // self.per_item))


def free_bytes(device: str = "cpu") -> int:
    """Memory this process can still take: free GPU memory, or available RAM (capped by a cgroup limit)."""
    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    free = int(psutil.virtual_memory().available)
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            free = min(free, int(limit) - usage)
    return max(0, free)


class _PeakBytes(TorchDispatchMode):
    """Live and peak bytes of the tensor storages that operators create while it is active.

    A dispatch mode is per thread and registers no global hook, so a trace in the app's worker thread
    leaves the models other sessions are running alone (torch's MemTracker hooks every module of the
    process, which breaks them)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._seen = WeakIdKeyDictionary()

    def _freed(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if storage not in self._seen:
                    nbytes = storage.nbytes()
                    self._seen[storage] = nbytes
                    self.live += nbytes
                    weakref.finalize(storage, self._freed, nbytes)
        self.peak = max(self.peak, self.live)
        return out


class _CpuFakeTensorMode(FakeTensorMode):
    # On a CUDA build without a GPU, FakeTensorMode would switch process-wide settings (how
    # torch.tensor lifts, the CUDA device guard) while it is active: unsafe beside other threads.
    avoid_device_init = False


_TRACE_LOCK = threading.Lock()


def _traced_peak(build: Callable[[], torch.nn.Module], step: Callable[[torch.nn.Module], None]) -> tuple[int, int] | None:
    """(peak bytes, parameter count) of `step(build())` traced with fake tensors, or None when the model
    cannot be traced (then nothing is checked)."""
    try:
        with _TRACE_LOCK, _CpuFakeTensorMode(), _PeakBytes() as tracker:
            model = build()
            step(model)
            return tracker.peak, sum(p.numel() for p in model.parameters())
    except Exception as exc:  # an operator without a fake kernel, say: estimate unavailable, not fatal
        log.info("memory estimate unavailable (%s: %s)", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None


def _factor(table: dict[str, float], masker: str, device: str) -> float:
    if str(device).startswith("cuda"):
        return GPU_FACTOR
    return table.get(masker, max(table.values()))


def training_estimate(model_config, batch_size: int, chunk_duration: float, lambda_: float = 0.5,
                      sup_weight: float = 0.0, device: str = "cpu") -> Estimate | None:
    """Peak memory of one PixIT step (forward of 3 x batch_size chunks, loss, backward, Adam step)."""
    from core.models.totatonet import ToTaToNet, ToTaToNetConfig
    from core.training import step_losses

    config = model_config if isinstance(model_config, ToTaToNetConfig) else ToTaToNetConfig.from_dict(model_config)
    samples = int(round(chunk_duration * config.sample_rate))
    k = config.n_sources

    def step(model):
        frames = model.num_frames(samples)
        batch = {"mix1": torch.randn(1, samples), "mix2": torch.randn(1, samples),
                 "y1": torch.zeros(1, k, frames), "y2": torch.zeros(1, k, frames), "y_mom": torch.zeros(1, k, frames)}
        if sup_weight > 0:
            batch["src_mom"] = torch.randn(1, k, samples)
            batch["src_valid"] = torch.ones(1, k, dtype=torch.bool)
        optimizer = torch.optim.Adam(model.parameters())
        out, _ = step_losses(model, batch, lambda_=lambda_, sup_weight=sup_weight)
        out.loss.backward()
        optimizer.step()

    traced = _traced_peak(lambda: ToTaToNet(config).train(), step)
    if traced is None:
        return None
    peak, n_params = traced
    f = _factor(TRAIN_FACTOR, config.masker, device)
    # weights, gradients and Adam's two moments do not grow with the batch; the rest of one pair's peak does
    return Estimate(fixed=16 * n_params, per_item=int(f * max(0, peak - 4 * n_params)), items=batch_size)


def inference_estimate(model, batch_size: int, window_samples: int, device: str = "cpu") -> Estimate | None:
    """Peak memory of one inference batch of `batch_size` windows (on top of the loaded model)."""
    from core.models.totatonet import ToTaToNet

    config = model.config

    def step(net):
        with torch.inference_mode():
            net(torch.randn(1, window_samples))

    traced = _traced_peak(lambda: ToTaToNet(config).eval(), step)
    if traced is None:
        return None
    peak, n_params = traced
    f = _factor(INFER_FACTOR, config.masker, device)
    # the loaded model is already in memory: only the window's activations are new
    return Estimate(fixed=0, per_item=int(f * max(0, peak - 4 * n_params)), items=batch_size)


def gb(n: int) -> str:
    return f"{n / GB:.1f} GB"


def check_training_fits(estimate: Estimate | None, device: str, what: str) -> None:
    """Refuse (one line naming the settings to lower) a training step that would not fit."""
    if estimate is None:
        return
    budget = int(SAFETY * free_bytes(device))
    if estimate.total <= budget:
        return
    fits = estimate.max_items(budget)
    where = "GPU memory" if str(device).startswith("cuda") else "RAM"
    hint = (f"use --batch-size {fits} or lower" if fits >= 1 else
            "even one pair does not fit: use a shorter --chunk-duration or a smaller model")
    raise PixitError(f"{what} needs about {gb(estimate.total)} per training step but {gb(budget)} of {where} is "
                     f"free: {hint} (or --chunk-duration, or free memory)")


def fit_inference_batch(estimate: Estimate | None, requested: int, device: str) -> tuple[int, str | None]:
    """The batch size to use: `requested` if it fits, else the largest that does, and a note saying so
    (a smaller inference batch gives the same result, only slower)."""
    if estimate is None:
        return requested, None
    budget = int(SAFETY * free_bytes(device))
    if estimate.total <= budget:
        return estimate.items, None
    fits = estimate.max_items(budget)
    if fits < 1:
        raise PixitError(f"one {'GPU' if str(device).startswith('cuda') else 'CPU'} window needs about "
                         f"{gb(estimate.per_item)} but only {gb(budget)} is free: free memory or use a smaller model")
    return fits, (f"batch of {estimate.items} windows needs about {gb(estimate.total)} but {gb(budget)} is free: "
                  f"using batches of {fits}")

