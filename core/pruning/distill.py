"""Distillation + structured pruning of an SSL model (DiariZen / DPHuBERT recipe).

The student starts as the task-fine-tuned SSL model with hard-concrete gates; the teacher is a
frozen copy of it ("fine-tune before pruning"). Loss per step:

    sum_{i in S} [ L1(W_i h_i^student, h_i^teacher) - cos(W_i h_i^student, h_i^teacher) ]
      + lambda1 (s - t) + lambda2 (s - t)^2

with S a few hidden layers (default 0, L/3, 2L/3, L), W_i learnable linear maps (identity at
start), s the expected sparsity from the gates (parameters or MACs per second) and t the target,
ramped up linearly over the first `warmup_steps`. lambda1/lambda2 start at 0 and are trained by
gradient ascent (an AdamW param group with maximize=True): while s < t they grow and push the
gates shut, and the quadratic term pins s to t. Only audio is needed (no labels).

After the run the eval masks are physically applied (`shrink`); optionally the pruned model is
distilled further without gates (`further_steps`, the paper's "+ further distill").
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import Cancelled, PixitError
from core.pruning.gates import DEFAULT_UNITS, PruningGates
from core.pruning.shrink import shrink

Progress = Callable[[float, str], None]


@dataclass
class PruneConfig:
    """Hyperparameters of `prune_ssl` (defaults follow DiariZen where it makes sense on a CPU)."""

    target_sparsity: float = 0.8
    target: str = "params"              # "params" | "macs" (MACs per second of audio)
    steps: int = 1000
    warmup_steps: int | None = None     # target ramp; default steps // 6 (5 of 30 epochs in the paper)
    further_steps: int = 0              # distillation of the pruned model afterwards (no gates)
    batch_size: int = 4
    chunk_seconds: float = 4.0
    lr: float = 2e-4                    # student weights and the linear maps
    reg_lr: float = 2e-2                # log_alpha and the Lagrange multipliers
    units: tuple[str, ...] = DEFAULT_UNITS
    distill_layers: tuple[int, ...] | None = None
    linear_maps: bool = True
    l1_weight: float = 1.0
    cos_weight: float = 1.0
    init_drop: float = 0.5              # initial drop rate of head / FFN gates (log_alpha = 0)
    init_drop_conv: float = 0.01        # conv gates start (almost) open
    grad_clip: float = 10.0
    macs_seconds: float = 5.0           # chunk length used for MACs per second (attention is T^2)
    normalize: bool = False             # zero-mean unit-variance per chunk (as the SSL front end)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0.0 <= self.target_sparsity < 1.0:
            raise PixitError(f"sparsity must be in [0, 1), got {self.target_sparsity}")
        if self.target not in ("params", "macs"):
            raise PixitError(f"pruning target must be 'params' or 'macs', got {self.target!r}")
        if self.steps < 1 or self.batch_size < 1 or self.chunk_seconds <= 0:
            raise PixitError("steps and batch size must be >= 1 and the chunk length > 0")


@dataclass
class PruneResult:
    model: nn.Module                        # the shrunk transformers model (eval mode)
    history: list[dict] = field(default_factory=list)
    sparsity: float = 0.0                   # hard sparsity in the chosen target
    params_sparsity: float = 0.0
    macs_sparsity: float = 0.0
    expected_sparsity: float = 0.0
    params_before: int = 0
    params_after: int = 0
    summary: dict = field(default_factory=dict)


# -- audio ---------------------------------------------------------------------------------------------
class AudioChunks:
    """Random fixed-length chunks of 16 kHz audio, inside the annotated (UEM) regions.

    Built from a manifest (`from_manifest`) or from waveforms in memory (`from_arrays`)."""

    def __init__(self, items: list[tuple], chunk_seconds: float, seed: int = 0):
        # items: (reader(start, duration) -> np.ndarray, [(start, end), ...] regions)
        self.items = [(reader, [r for r in regions if r[1] - r[0] > 0]) for reader, regions in items]
        self.items = [it for it in self.items if it[1]]
        if not self.items:
            raise PixitError("no audio to distill on (empty manifest or empty UEMs)")
        self.chunk_seconds = float(chunk_seconds)
        self.rng = np.random.default_rng(seed)
        lengths = np.array([sum(e - s for s, e in regions) for _, regions in self.items], dtype=float)
        self.weights = lengths / lengths.sum()

    @classmethod
    def from_manifest(cls, manifest: str | Path, chunk_seconds: float, seed: int = 0) -> "AudioChunks":
        from core.data import read_chunk, read_manifest

        items = []
        for rec in read_manifest(manifest):
            regions = [(float(s.start), float(s.end)) for s in rec.uem] or [(0.0, float(rec.duration))]
            items.append(((lambda start, dur, p=rec.audio: read_chunk(p, start, dur)), regions))
        return cls(items, chunk_seconds, seed)

    @classmethod
    def from_arrays(cls, waveforms: Iterable[np.ndarray], chunk_seconds: float, seed: int = 0,
                    sample_rate: int = 16000) -> "AudioChunks":
        items = []
        for w in waveforms:
            w = np.asarray(w, dtype=np.float32)

            def reader(start, dur, w=w):
                a = int(round(start * sample_rate))
                n = int(round(dur * sample_rate))
                out = np.zeros(n, dtype=np.float32)
                seg = w[a:a + n]
                out[: len(seg)] = seg
                return out

            items.append((reader, [(0.0, len(w) / sample_rate)]))
        return cls(items, chunk_seconds, seed)

    def sample(self, batch_size: int) -> Tensor:
        out = []
        for _ in range(batch_size):
            reader, regions = self.items[self.rng.choice(len(self.items), p=self.weights)]
            lens = np.array([e - s for s, e in regions])
            s, e = regions[self.rng.choice(len(regions), p=lens / lens.sum())]
            start = s + self.rng.uniform(0, max(0.0, (e - s) - self.chunk_seconds))
            out.append(reader(start, self.chunk_seconds))
        return torch.from_numpy(np.stack(out))


# -- loss ------------------------------------------------------------------------------------------------
def default_distill_layers(num_layers: int) -> tuple[int, ...]:
    """0, L/3, 2L/3, L (= 0, 4, 8, 12 for Base and 0, 8, 16, 24 for Large)."""
    return tuple(sorted({0, round(num_layers / 3), round(2 * num_layers / 3), num_layers}))


class DistillLoss(nn.Module):
    """Sum over chosen layers of L1 + (-cosine) between mapped student and teacher states."""

    def __init__(self, hidden: int, layers: Iterable[int], linear_maps: bool = True,
                 l1_weight: float = 1.0, cos_weight: float = 1.0):
        super().__init__()
        self.layers = tuple(layers)
        self.l1_weight, self.cos_weight = l1_weight, cos_weight
        self.maps = nn.ModuleList()
        if linear_maps:
            for _ in self.layers:
                lin = nn.Linear(hidden, hidden)
                nn.init.eye_(lin.weight)
                nn.init.zeros_(lin.bias)
                self.maps.append(lin)

    def forward(self, student: tuple[Tensor, ...], teacher: tuple[Tensor, ...]) -> tuple[Tensor, dict]:
        total, l1s, coss = 0.0, 0.0, 0.0
        for j, i in enumerate(self.layers):
            s = student[i]
            if len(self.maps):
                s = self.maps[j](s)
            t = teacher[i]
            l1 = F.l1_loss(s, t)
            cos = F.cosine_similarity(s, t, dim=-1).mean()
            total = total + self.l1_weight * l1 - self.cos_weight * cos
            l1s, coss = l1s + float(l1.detach()), coss + float(cos.detach())
        n = max(1, len(self.layers))
        return total, {"l1": l1s / n, "cos": coss / n}


# -- the loop --------------------------------------------------------------------------------------------
def _normalize(x: Tensor) -> Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + 1e-7)


def _student_teacher_states(audio, cfg, student, teacher, device):
    """Hidden states of student and (frozen) teacher on one fresh batch of audio chunks."""
    x = audio.sample(cfg.batch_size).to(device)
    if cfg.normalize:
        x = _normalize(x)
    with torch.no_grad():
        t_states = _hidden(teacher, x)
    return _hidden(student, x), t_states


def _hidden(model: nn.Module, x: Tensor) -> tuple[Tensor, ...]:
    return model(x, output_hidden_states=True).hidden_states


def _check(should_stop) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("pruning stopped")


def prune_ssl(model: nn.Module, audio: AudioChunks, config: PruneConfig | None = None,
              progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
              teacher: nn.Module | None = None) -> PruneResult:
    """Distill + prune `model` (a transformers WavLM/HuBERT/wav2vec2 model, fine-tuned for the
    task) toward `config.target_sparsity`, then shrink it. `model` itself becomes the student
    (it is modified); `teacher` defaults to a frozen copy of it taken first."""
    cfg = config or PruneConfig()
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    model.to(device)
    if teacher is None:
        teacher = copy.deepcopy(model)
    teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    saved = {k: getattr(model.config, k, None) for k in ("layerdrop", "apply_spec_augment")}
    model.config.layerdrop = 0.0          # a skipped layer would break the distilled states
    model.config.apply_spec_augment = False
    for p in model.parameters():
        p.requires_grad_(True)

    gates = PruningGates(model, cfg.units, init_drop=cfg.init_drop, init_drop_conv=cfg.init_drop_conv).to(device).attach()
    arch = gates.arch
    params_before = arch.total_params
    layers = tuple(cfg.distill_layers) if cfg.distill_layers else default_distill_layers(arch.num_layers)
    if any(i < 0 or i > arch.num_layers for i in layers):
        raise PixitError(f"distill layers must be in 0..{arch.num_layers}, got {list(layers)}")
    loss_fn = DistillLoss(arch.hidden, layers, cfg.linear_maps, cfg.l1_weight, cfg.cos_weight).to(device)
    lambdas = nn.Parameter(torch.zeros(2, device=device))
    student_params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": student_params, "lr": cfg.lr, "name": "student"},
        {"params": gates.log_alpha_parameters(), "lr": cfg.reg_lr, "name": "log_alpha"},
        {"params": [lambdas], "lr": cfg.reg_lr, "name": "lambda", "maximize": True},
    ]
    if len(loss_fn.maps):
        groups.append({"params": list(loss_fn.maps.parameters()), "lr": cfg.lr, "name": "maps"})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, cfg.steps // 6)
    total_steps = cfg.steps + cfg.further_steps
    history: list[dict] = []
    t0 = time.monotonic()

    try:
        model.train()
        for step in range(cfg.steps):
            _check(should_stop)
            s_states, t_states = _student_teacher_states(audio, cfg, model, teacher, device)
            distill, parts = loss_fn(s_states, t_states)
            target = cfg.target_sparsity * min(1.0, (step + 1) / warmup)
            s = gates.expected_sparsity(cfg.target, cfg.macs_seconds)
            gap = s - target
            reg = lambdas[0] * gap + lambdas[1] * gap * gap
            loss = distill + reg
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(student_params, cfg.grad_clip)
            optimizer.step()
            loss, distill, reg, s = loss.detach(), distill.detach(), reg.detach(), s.detach()
            row = {"step": step + 1, "phase": "prune", "loss": float(loss), "distill": float(distill),
                   "reg": float(reg), "l1": parts["l1"], "cos": parts["cos"], "target": target,
                   "expected_sparsity": float(s), "lambda1": float(lambdas[0].detach()),
                   "lambda2": float(lambdas[1].detach()),
                   "elapsed": time.monotonic() - t0}
            history.append(row)
            if progress is not None:
                progress((step + 1) / total_steps,
                         f"prune step {step + 1}/{cfg.steps}: distill {row['distill']:.3f}, "
                         f"sparsity {row['expected_sparsity']:.3f} -> {target:.3f}")

        model.eval()
        expected = float(gates.expected_sparsity(cfg.target, cfg.macs_seconds).detach())
        hard_params = gates.hard_sparsity("params")
        hard_macs = gates.hard_sparsity("macs", cfg.macs_seconds)
        pruned = shrink(gates, inplace=True)
    finally:
        gates.detach()
        for k, v in saved.items():
            if v is not None:
                setattr(model.config, k, v)

    if cfg.further_steps:
        history += distill_further(pruned, teacher, audio, cfg, loss_fn, progress, should_stop,
                                   offset=cfg.steps, total=total_steps)
    pruned.eval()
    params_after = sum(p.numel() for p in pruned.parameters())
    result = PruneResult(
        model=pruned, history=history,
        sparsity=hard_params if cfg.target == "params" else hard_macs,
        params_sparsity=hard_params, macs_sparsity=hard_macs, expected_sparsity=expected,
        params_before=params_before, params_after=params_after,
    )
    spec = pruned.config.pixit_pruning
    spec.update({"target": cfg.target, "target_sparsity": cfg.target_sparsity,
                 "sparsity": hard_params, "macs_sparsity": hard_macs})
    from core.pruning.shrink import describe

    result.summary = {**describe(pruned), "config": asdict(cfg)}
    if progress is not None:
        progress(1.0, f"pruned: {params_before / 1e6:.2f}M -> {params_after / 1e6:.2f}M parameters "
                      f"({hard_params:.1%} params, {hard_macs:.1%} MACs sparsity)")
    return result


def distill_further(student: nn.Module, teacher: nn.Module, audio: AudioChunks, cfg: PruneConfig,
                    loss_fn: DistillLoss | None = None, progress: Progress | None = None,
                    should_stop: Callable[[], bool] | None = None, offset: int = 0,
                    total: int | None = None) -> list[dict]:
    """Distil a (pruned) student toward the teacher for `cfg.further_steps`, no gates."""
    device = torch.device(cfg.device)
    layers = tuple(cfg.distill_layers) if cfg.distill_layers else default_distill_layers(len(student.encoder.layers))
    if loss_fn is None:
        loss_fn = DistillLoss(int(student.config.hidden_size), layers, cfg.linear_maps, cfg.l1_weight, cfg.cos_weight).to(device)
    saved = {k: getattr(student.config, k, None) for k in ("layerdrop", "apply_spec_augment")}
    student.config.layerdrop, student.config.apply_spec_augment = 0.0, False
    params = [p for p in student.parameters()] + list(loss_fn.parameters())
    for p in student.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    total = total or cfg.further_steps
    history = []
    student.train()
    try:
        for step in range(cfg.further_steps):
            _check(should_stop)
            loss, parts = loss_fn(*_student_teacher_states(audio, cfg, student, teacher, device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            history.append({"step": offset + step + 1, "phase": "distill", "loss": float(loss.detach()),
                            "distill": float(loss.detach()), **parts})
            if progress is not None:
                progress((offset + step + 1) / total,
                         f"distill step {step + 1}/{cfg.further_steps}: loss {history[-1]['loss']:.3f}")
    finally:
        for k, v in saved.items():
            if v is not None:
                setattr(student.config, k, v)
    student.eval()
    return history
