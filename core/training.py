"""PixIT training and fine-tuning of ToTaToNet (Lightning).

`train(train_manifest, out_dir, ...)` is the one entry point (CLI `pixit train`, the app's
"retrain" button, notebooks). One training step draws `batch_size` speaker-disjoint chunk pairs
(core.data), forwards cat(mix1, mix2, mix1 + mix2) through the model once, and minimises

    lambda * (PIT(mix1) + PIT(mix2) + PIT(MoM)) + (1 - lambda) * MixIT(MoM)   [+ sup_weight * PIT-SI-SDR]

with Adam on two parameter groups (SSL network at ssl_lr, the rest at lr), gradient clipping
(norm 5) and ReduceLROnPlateau (factor 0.5, patience 5 validations) on the validation loss.

Validation uses a fixed list of pairs (built once, no augmentation, identical every time) and
reports the loss parts, the SI-SDR of the MixIT-best reconstruction of mix1/mix2 from the MoM
sources (and its improvement over the MoM itself) and the frame-level DER of the real chunks
(mix1/mix2, threshold 0.5, optimal speaker mapping). Every validation appends one row to
out_dir/metrics.csv; the best one (lowest validation loss) is exported to out_dir/model
(config.json + model.safetensors via model.save). Lightning's own checkpoints, loggers, progress
bars and summaries are switched off: the exported model folder is the only weights file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import shutil
import signal
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import numpy as np
import torch

from core.data import FixedPairs, FrameGrid, PairSampler, Recording, ReplayMix, TrainPairs, check_audio, read_manifest
from core.errors import Cancelled, Failed, Interrupted, PixitError
from core.checkpoint import CHECKPOINT_DIR, read_state, restore_optimizer, save_checkpoint
from core.fileio import atomic_write_json, atomic_write_text
from core.losses import best_permutation, pixit_loss, si_sdr
from core.pipeline import copy_tuned_params

log = logging.getLogger(__name__)
MAX_NONFINITE_STEPS = 3  # consecutive NaN / inf losses that stop a run (one is skipped: a rare bad batch)

Progress = Callable[[float, str], None]
ShouldStop = Callable[[], bool]

METRIC_COLUMNS = [
    "step", "epoch",
    "train_loss", "train_pit", "train_mixit", "train_sup", "train_grad_norm",
    "val_loss", "val_pit", "val_mixit", "val_sup",
    "val_mom_sisdr", "val_mom_sisdri", "val_der", "val_false_alarm", "val_missed", "val_confusion",
    "lr", "ssl_lr", "elapsed_s",
]


@dataclass
class TrainConfig:
    """Settings of one PixIT training run (JSON-serialisable, stored in out_dir/train.json)."""

    max_steps: int | None = None  # total optimiser steps (wins over epochs)
    epochs: int | None = None  # else epochs x steps_per_epoch; neither: 10 epochs
    steps_per_epoch: int | None = None  # None: about one pass over the annotated audio
    batch_size: int = 8  # pairs per batch (the model sees 3 x batch_size chunks per step)
    chunk_duration: float = 5.0  # seconds
    lambda_: float = 0.5  # 1.0 = diarization only
    lr: float = 3e-4
    ssl_lr: float = 1e-5
    sup_weight: float = 0.0  # supervised PIT-SI-SDR on ground-truth sources (synthetic data)
    seed: int = 0
    num_workers: int = 0
    val_pairs: int = 64
    val_every: int | None = None  # steps between validations; None: once per epoch
    grad_clip: float = 5.0
    plateau_factor: float = 0.5
    plateau_patience: int = 5  # validations without improvement before the LR is halved
    threshold: float = 0.5  # activation threshold of the validation DER
    max_speakers: int | None = None  # K_max of the pairs; None: the model's n_sources
    accelerator: str = "auto"
    devices: int | str | list = 1  # "auto" = every device (DDP when more than one)
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str | None = None  # Lightning precision, e.g. "bf16-mixed" on GPU; None: 32-bit
    warmup_steps: int = 0  # the learning rate rises linearly over the first steps (fine-tuning)
    update: str = "all"  # which parts learn: ToTaToNet.UPDATE_PARTS (all | late | diarization)
    replay_fraction: float = 0.0  # share of pairs drawn from the replay recordings (train(replay=...))

    def check(self) -> None:
        """Reject nonsensical settings with a one-line PixitError."""
        positive = {"batch_size": self.batch_size, "chunk_duration": self.chunk_duration, "val_pairs": self.val_pairs,
                    "lr": self.lr, "num_nodes": self.num_nodes}
        for name, value in positive.items():
            if value is None or value <= 0:
                raise PixitError(f"{name} must be positive, got {value}")
        for name in ("max_steps", "epochs", "steps_per_epoch", "val_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise PixitError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.lambda_ <= 1.0:
            raise PixitError(f"lambda must be between 0 and 1, got {self.lambda_}")
        if self.sup_weight < 0 or self.ssl_lr < 0 or self.num_workers < 0 or self.warmup_steps < 0:
            raise PixitError("sup_weight, ssl_lr, num_workers and warmup_steps must not be negative")
        if not 0.0 <= self.replay_fraction < 1.0:
            raise PixitError(f"replay_fraction must be in [0, 1), got {self.replay_fraction}")
        from core.models.totatonet import UPDATE_PARTS

        if self.update not in UPDATE_PARTS:
            raise PixitError(f"update must be one of {', '.join(UPDATE_PARTS)}, got {self.update!r}")


@dataclass
class TrainResult:
    model_dir: Path  # out_dir/"model": the best model (lowest validation loss)
    metrics_path: Path  # out_dir/"metrics.csv"
    best_val_loss: float
    best_step: int
    steps: int
    history: list[dict] = field(default_factory=list)  # the metrics.csv rows


# --------------------------------------------------------------------------------------- metrics
def der_counts(activations: torch.Tensor, targets: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Frame-level (false alarm, missed, confusion, speech) speaker-frame counts, summed over the batch.

    Predictions are binarised at `threshold` and mapped to the reference speakers with the
    permutation that maximises matching active frames (the optimal DER mapping).
    DER = (false alarm + missed + confusion) / speech.
    """
    hyp = (activations > threshold).to(targets.dtype)
    ref = targets
    matches = torch.einsum("bif,bjf->bij", ref, hyp)
    _, perm = best_permutation(-matches)
    hyp = hyp.gather(1, perm[:, :, None].expand_as(hyp))
    n_ref, n_hyp, correct = ref.sum(1), hyp.sum(1), (ref * hyp).sum(1)
    false_alarm = (n_hyp - n_ref).clamp_min(0).sum()
    missed = (n_ref - n_hyp).clamp_min(0).sum()
    confusion = (torch.minimum(n_ref, n_hyp) - correct).sum()
    return torch.stack([false_alarm, missed, confusion, n_ref.sum()]).double()


def step_losses(model, batch: dict, lambda_: float, sup_weight: float = 0.0):
    """One PixIT step's losses: the model sees cat(mix1, mix2, mix1 + mix2) once.
    Returns the PixitLossOutput and (act1, act2, sources_mom, mom) for the validation metrics."""
    mix1, mix2 = batch["mix1"], batch["mix2"]
    b = mix1.shape[0]
    mom = mix1 + mix2
    sources, activations = model(torch.cat([mix1, mix2, mom], dim=0))
    act1, act2, act_mom = activations.float().split(b, dim=0)
    sources_mom = sources[2 * b:].float()
    out = pixit_loss(act1, act2, act_mom, batch["y1"], batch["y2"], batch["y_mom"],
                     sources_mom=sources_mom, mix1=mix1.float(), mix2=mix2.float(), lambda_=lambda_,
                     true_sources=batch.get("src_mom"), true_sources_valid=batch.get("src_valid"),
                     sup_weight=sup_weight)
    return out, (act1, act2, sources_mom, mom)


# -------------------------------------------------------------------------------- Lightning part
class PixitModule(pl.LightningModule):
    """Wraps a ToTaToNet: PixIT loss, Adam with param groups, plateau LR, validation metrics."""

    def __init__(self, model, config: TrainConfig, run: "_Run") -> None:
        super().__init__()
        self.model = model
        self.cfg = config
        self.run = run
        self._train_sums = torch.zeros(6, dtype=torch.float64)  # loss, pit, mixit, sup, grad_norm, n
        self._val_sums = torch.zeros(8, dtype=torch.float64)  # loss, pit, mixit, sup, n, sdr, sdri, n_sdr
        self.plateau = None

    # -- data --------------------------------------------------------------------------
    def train_dataloader(self):
        # a resumed run draws a fresh stream of pairs, not the first steps' pairs again
        sampler = self.run.train_sampler
        if self.run.replay_sampler is not None:
            sampler = ReplayMix(sampler, self.run.replay_sampler, self.cfg.replay_fraction)
        dataset = TrainPairs(sampler, seed=self.cfg.seed + 7919 * self.run.step_offset, rank=self.global_rank,
                             length=self.run.steps_per_epoch * self.cfg.batch_size)
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.cfg.batch_size, num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0, pin_memory=torch.cuda.is_available())

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.run.val_set, batch_size=self.cfg.batch_size, shuffle=False,
                                           num_workers=self.cfg.num_workers,
                                           persistent_workers=self.cfg.num_workers > 0)

    # -- optimisation ------------------------------------------------------------------
    @property
    def step(self) -> int:
        """Optimiser steps of the whole run, the steps before a resume included."""
        return int(self.global_step) + self.run.step_offset

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.model.parameter_groups(lr=self.cfg.lr, ssl_lr=self.cfg.ssl_lr))
        # stepped by hand after each validation (patience counts validations)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.cfg.plateau_factor, patience=self.cfg.plateau_patience)
        if self.run.resume_state is not None:
            restore_optimizer(self.run.out_dir, optimizer, self.plateau, self.run.resume_state)
        return optimizer

    def _losses(self, batch):
        return step_losses(self.model, batch, self.cfg.lambda_, self.cfg.sup_weight)

    def training_step(self, batch, batch_idx):
        out, _ = self._losses(batch)
        if not torch.isfinite(out.loss):
            self.run.skipped += 1
            self.run.nonfinite += 1
            if self.run.nonfinite >= MAX_NONFINITE_STEPS:
                raise Failed(self.run.diverged(self.step))
            log.warning("non-finite loss at step %d: batch skipped", self.step)
            return None  # Lightning skips backward and the optimiser step
        self.run.nonfinite = 0
        parts = torch.stack([out.loss, out.pit, out.mixit, out.sup]).detach().double().cpu()
        self._train_sums[:4] += parts
        self._train_sums[5] += 1
        return out.loss

    def on_before_optimizer_step(self, optimizer):
        norms = [p.grad.detach().norm(2) for p in self.model.parameters() if p.grad is not None]
        if norms:
            self._train_sums[4] += torch.linalg.vector_norm(torch.stack(norms)).double().cpu()

    def on_train_batch_start(self, batch, batch_idx):
        self.run.check_stop()
        if self.step < self.cfg.warmup_steps and self.plateau is not None:
            for group in self.plateau.optimizer.param_groups:
                base = group.setdefault("warmup_target", group["lr"])
                group["lr"] = base * (self.step + 1) / self.cfg.warmup_steps

    def on_train_batch_end(self, outputs, batch, batch_idx):
        n = max(1.0, float(self._train_sums[5]))
        loss, pit, mixit = (self._train_sums[:3] / n).tolist()
        step = self.step
        self.run.report(step / self.run.total_steps,
                        f"step {step}/{self.run.total_steps} loss {loss:.4f} (pit {pit:.4f}, mixit {mixit:.2f})")

    # -- validation --------------------------------------------------------------------
    def on_validation_epoch_start(self):
        self._val_sums.zero_()
        self.run.report(self.step / self.run.total_steps, f"validating at step {self.step}")

    def on_validation_batch_start(self, batch, batch_idx, dataloader_idx=0):
        self.run.check_stop()

    def validation_step(self, batch, batch_idx):
        out, (act1, act2, sources_mom, mom) = self._losses(batch)
        b = act1.shape[0]
        mixtures = torch.stack([batch["mix1"], batch["mix2"]], dim=1).float()
        if out.mixit_assignment is not None:
            remix = torch.bmm(out.mixit_assignment, sources_mom)
            sdr = si_sdr(remix, mixtures)
            baseline = si_sdr(mom.float()[:, None, :].expand_as(mixtures), mixtures)
            audible = (mixtures**2).mean(-1) > 1e-10  # silent fallback chunks have no SI-SDR
            sdr_sum = (sdr * audible).sum()
            sdri_sum = ((sdr - baseline) * audible).sum()
            n_sdr = audible.sum()
        else:
            sdr_sum = sdri_sum = n_sdr = torch.zeros((), device=act1.device)
        counts = der_counts(torch.cat([act1, act2]), torch.cat([batch["y1"], batch["y2"]]).float(), self.cfg.threshold)
        row = torch.stack([out.loss.detach() * b, out.pit.detach() * b, out.mixit.detach() * b, out.sup.detach() * b,
                           torch.tensor(float(b), device=act1.device)]).double().cpu()
        self._val_sums[:5] += row
        self._val_sums[5:7] += torch.stack([sdr_sum.detach(), sdri_sum.detach()]).double().cpu()
        self._val_sums[7] += float(n_sdr)
        self.run.der_counts += counts.cpu()

    def on_validation_epoch_end(self):
        sums = self._val_sums.to(self.device)
        der = self.run.der_counts.to(self.device)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
            der = self.trainer.strategy.reduce(der, reduce_op="sum")
        self.run.der_counts = torch.zeros(4, dtype=torch.float64)
        sums, der = sums.cpu(), der.cpu()
        n = max(1.0, float(sums[4]))
        n_sdr = float(sums[7])
        speech = float(der[3])
        val = {
            "val_loss": float(sums[0]) / n, "val_pit": float(sums[1]) / n, "val_mixit": float(sums[2]) / n,
            "val_sup": float(sums[3]) / n,
            "val_mom_sisdr": float(sums[5]) / n_sdr if n_sdr else float("nan"),
            "val_mom_sisdri": float(sums[6]) / n_sdr if n_sdr else float("nan"),
            "val_der": float(der[:3].sum()) / speech if speech else float("nan"),
            "val_false_alarm": float(der[0]) / speech if speech else float("nan"),
            "val_missed": float(der[1]) / speech if speech else float("nan"),
            "val_confusion": float(der[2]) / speech if speech else float("nan"),
        }
        if self.trainer.state.fn == "fit":
            if self.plateau is not None and math.isfinite(val["val_loss"]):
                self.plateau.step(val["val_loss"])
        self.run.on_validation(self, val)


# ------------------------------------------------------------------------------------- the run
class _Run:
    """State shared between train() and the LightningModule: data, callbacks, metrics file."""

    def __init__(self, out_dir: Path, config: TrainConfig, progress: Progress | None, should_stop: ShouldStop | None):
        self.out_dir = out_dir
        self.cfg = config
        self.progress = progress
        self.should_stop = should_stop
        self.metrics_path = out_dir / "metrics.csv"
        self.model_dir = out_dir / "model"
        self.history: list[dict] = []
        self.best_loss = math.inf
        self.best_step = -1
        self.last_val_step = -1
        self.skipped = 0
        self.nonfinite = 0  # consecutive steps with a NaN / inf loss
        self.signalled = 0  # SIGTERM / SIGINT received: stop at the next step
        self.der_counts = torch.zeros(4, dtype=torch.float64)
        self.start = time.monotonic()
        self.train_sampler: PairSampler | None = None
        self.replay_sampler: PairSampler | None = None
        self.val_set: FixedPairs | None = None
        self.steps_per_epoch = 1
        self.total_steps = 1
        self.is_zero = True
        self.step_offset = 0  # steps done before a resume
        self.resume_state: dict | None = None  # core.checkpoint state when resuming
        self.elapsed_offset = 0.0

    def report(self, fraction: float, message: str) -> None:
        if self.is_zero:
            log.info(message)
            if self.progress is not None:
                self.progress(float(min(1.0, max(0.0, fraction))), message)

    def diverged(self, step: int) -> str:
        """Why a run whose loss turned NaN stopped, naming the model folder only if one was written."""
        saved = (self.model_dir / "config.json").is_file()
        return (f"the loss was NaN or infinite for {self.nonfinite} steps in a row (step {step}): training stopped"
                + (f"; the best model so far (step {self.best_step}) is in {self.model_dir}" if saved else "; no model was written"))

    def check_stop(self) -> None:
        if self.signalled:
            raise Interrupted(f"stopped by {signal.Signals(self.signalled).name}", self.signalled)
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("training cancelled")

    def on_validation(self, module, val: dict[str, float]) -> None:
        step = int(module.step)
        self.last_val_step = step
        sums = module._train_sums
        n = float(sums[5])
        train = dict(zip(["train_loss", "train_pit", "train_mixit", "train_sup", "train_grad_norm"],
                         [float(x) / n if n else float("nan") for x in sums[:5]]))
        sums.zero_()
        groups = module.plateau.optimizer.param_groups if module.plateau is not None else []
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(groups)}
        row = {"step": step, "epoch": round(step / self.steps_per_epoch, 3), **train, **val,
               "lr": lrs.get("main", float("nan")), "ssl_lr": lrs.get("ssl", float("nan")),
               "elapsed_s": round(time.monotonic() - self.start + self.elapsed_offset, 1)}
        if not self.is_zero:
            return
        self.history.append(row)
        with open(self.metrics_path, "a", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
            writer.writerow({k: _fmt(row[k]) for k in METRIC_COLUMNS})
            handle.flush()
            os.fsync(handle.fileno())
        improved = math.isfinite(val["val_loss"]) and val["val_loss"] < self.best_loss
        if improved:
            self.best_loss, self.best_step = val["val_loss"], step
            module.model.save(self.model_dir)
        self.checkpoint(module)
        self.report(step / self.total_steps,
                    f"validation at step {step}: loss {val['val_loss']:.4f} (pit {val['val_pit']:.4f}, mixit {val['val_mixit']:.2f}), "
                    f"MoM SI-SDR {val['val_mom_sisdr']:.2f} dB (SI-SDRi {val['val_mom_sisdri']:+.2f}), "
                    f"DER {100 * val['val_der']:.1f}%"
                    + (" (best: model saved)" if improved else ""))

    def checkpoint(self, module) -> None:
        """RUN/checkpoint (core.checkpoint): weights, optimizer, LR schedule, step, best loss."""
        if module.plateau is None or not self.is_zero:
            return
        save_checkpoint(self.out_dir, module.model, module.plateau.optimizer, module.plateau, module.step,
                        self.best_loss, self.best_step,
                        elapsed=round(time.monotonic() - self.start + self.elapsed_offset, 1))


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


@contextlib.contextmanager
def _quiet_lightning():
    """No Lightning banners ('GPU available...', 'LOCAL_RANK...') or data-loader hints."""
    loggers = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric",
                                                    "pytorch_lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*num_workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*Your `IterableDataset` has `__len__` defined.*")
        warnings.filterwarnings("ignore", message=".*predict_dataloader.*")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


@contextlib.contextmanager
def _stop_on_signals(run: "_Run"):
    """SIGTERM (a scheduler, `kill`) and SIGINT (Ctrl+C) stop training at the next step, so that
    train.json says 'cancelled' and the best model so far stays complete. Main thread only (the app
    trains in a worker thread and stops it with should_stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    watched = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.getsignal(s) for s in watched}

    def handler(signum, frame):
        run.signalled = signum

    for s in watched:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _launched_as_rank_zero() -> bool:
    """False in the extra processes that a multi-device (DDP) launcher starts: they must not
    (re)initialise the run folder. Decided from the launcher's environment, before the Trainer exists."""
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def read_recordings(source: str | os.PathLike | list[Recording], what: str) -> list[Recording]:
    """Recordings given as a manifest / folder or as a list (`what` names them in errors)."""
    if isinstance(source, (list, tuple)):
        if not source:
            raise PixitError(f"{what}: no recordings")
        return list(source)
    return read_manifest(source)


def uses_gpu(accelerator: str) -> bool:
    """Whether Lightning's `accelerator` setting will train on CUDA GPUs here."""
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def default_model_config(gpu: bool):
    """The architecture trained when none is given: the paper's on a GPU; on a CPU the shipped default
    model's (the paper-size model needs about 5 GB per 5 s chunk pair and trains at ~0.1 step/s here)."""
    from core.models import ToTaToNetConfig, resolve_model_path

    if gpu:
        return ToTaToNetConfig(), "the paper's architecture (GPU)"
    import json

    shipped = json.loads((resolve_model_path("default") / "config.json").read_text(encoding="utf-8"))
    return ToTaToNetConfig.from_dict(shipped), "the shipped default model's architecture (CPU; --config for another)"


def _build_model(init, model_config, gpu: bool = False):
    """(model, note): the model to train and, when the architecture was chosen here, why."""
    from core.models import ToTaToNet, ToTaToNetConfig, load_model

    if init is not None and model_config is not None:
        raise PixitError("give either a model to fine-tune (init) or a model config, not both")
    if init is not None:
        return load_model(init, device="cpu"), None
    if isinstance(model_config, (str, os.PathLike)):
        import json

        path = Path(model_config)
        try:
            model_config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PixitError(f"{path.name}: cannot read model config ({str(exc).splitlines()[0]})") from None
    if isinstance(model_config, dict):
        model_config = ToTaToNetConfig.from_dict(model_config)
    note = None
    if model_config is None:
        model_config, chosen = default_model_config(gpu)
        note = f"no model config given: training {chosen}"
    return ToTaToNet(model_config), note


def _check_memory(model, cfg: TrainConfig, gpu: bool) -> None:
    """Refuse, before anything starts, a step that does not fit in the device's free memory."""
    from core.memory import check_training_fits, training_estimate

    if not gpu and cfg.accelerator not in ("auto", "cpu"):
        return  # mps, tpu ...: no estimate
    estimate = training_estimate(model.config, cfg.batch_size, cfg.chunk_duration, cfg.lambda_, cfg.sup_weight,
                                 device="cuda" if gpu else "cpu")
    if estimate is not None and not gpu and isinstance(cfg.devices, int) and cfg.devices > 1:
        estimate.fixed *= cfg.devices  # several CPU processes share this machine's RAM
        estimate.per_item *= cfg.devices
    check_training_fits(estimate, "cuda" if gpu else "cpu",
                        f"batch {cfg.batch_size} x {cfg.chunk_duration:g} s chunk pairs")


def train(
    train_manifest: str | os.PathLike | list[Recording],
    out_dir: str | os.PathLike,
    dev_manifest: str | os.PathLike | list[Recording] | None = None,
    init: str | os.PathLike | None = None,
    config: TrainConfig | None = None,
    model_config=None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    resume: bool = False,
    replay: str | os.PathLike | list[Recording] | None = None,
) -> TrainResult:
    """Train a ToTaToNet with PixIT (from scratch with `model_config`, or fine-tune `init`).

    `resume`: go on from out_dir/checkpoint (core.checkpoint; written at every validation and when a
    signal stops training): weights, optimizer, LR schedule, step count and best loss continue, and
    metrics.csv / model/ are kept; `config.max_steps` is the total over all the run's parts.

    Writes out_dir/model (best validation loss; config.json + model.safetensors),
    out_dir/metrics.csv (one row per validation) and out_dir/train.json (settings, status).
    `replay`: recordings like the model's original training data; `config.replay_fraction` of the
    training pairs come from them (fine-tuning on a few minutes without forgetting the rest).
    `progress(fraction, message)` is called every step; `should_stop()` is checked every step
    and raises core.errors.Cancelled (out_dir then holds the best model so far, if any).
    """
    cfg = TrainConfig(**asdict(config)) if config is not None else TrainConfig()
    cfg.check()
    out_dir = Path(out_dir)
    run = _Run(out_dir, cfg, progress, should_stop)
    if resume:
        if init is not None or model_config is not None:
            raise PixitError("--resume goes on with the run's own model: do not combine it with --init or --config")
        run.resume_state = read_state(out_dir)
        run.step_offset = int(run.resume_state["step"])
        run.elapsed_offset = float(run.resume_state.get("elapsed_s") or 0.0)
        best = run.resume_state.get("best_loss")
        run.best_loss, run.best_step = (float(best), int(run.resume_state["best_step"])) if best is not None else (math.inf, -1)
        init = out_dir / CHECKPOINT_DIR
    params_source = init  # whose tuned pipeline parameters the trained model inherits
    if resume:
        import json

        try:
            params_source = json.loads((out_dir / "train.json").read_text(encoding="utf-8")).get("params_from")
        except (OSError, ValueError):
            params_source = None

    train_recs = read_recordings(train_manifest, "training data")
    dev_recs = read_recordings(dev_manifest, "dev data") if dev_manifest is not None else None
    check_audio(train_recs, "training data")
    check_audio(dev_recs or [], "dev data")
    replay_recs = read_recordings(replay, "replay data") if replay is not None and cfg.replay_fraction > 0 else []
    torch.manual_seed(cfg.seed)
    gpu = uses_gpu(cfg.accelerator)
    model, chosen = _build_model(init, model_config, gpu)
    trainable = model.set_trainable(cfg.update)
    if cfg.lambda_ < 1.0 and model.config.n_sources < 2:
        raise PixitError("MixIT needs a model with at least 2 sources")
    max_speakers = cfg.max_speakers or model.config.n_sources
    grid = FrameGrid.from_model(model, cfg.chunk_duration)
    with_sources = cfg.sup_weight > 0

    notes = [chosen] if chosen else []
    _check_memory(model, cfg, gpu)
    if dev_recs is None:
        if len(train_recs) >= 5:
            order = np.random.default_rng(cfg.seed).permutation(len(train_recs))
            n_val = max(1, round(0.1 * len(train_recs)))
            dev_recs = [train_recs[i] for i in sorted(order[:n_val])]
            train_recs = [train_recs[i] for i in sorted(order[n_val:])]
            notes.append(f"no dev set: validating on {n_val} held-out training recording(s) "
                         f"({', '.join(r.uri for r in dev_recs)}), not trained on")
        else:
            notes.append("no dev set: validating on a fixed set of pairs drawn from the training recordings "
                         "(they overlap the training audio)")
    try:
        run.train_sampler = PairSampler(train_recs, grid, cfg.chunk_duration, max_speakers, with_sources=with_sources)
    except PixitError as exc:
        raise PixitError(f"training data: {exc}") from None
    if replay_recs:
        try:
            run.replay_sampler = PairSampler(replay_recs, grid, cfg.chunk_duration, max_speakers)
        except PixitError as exc:
            raise PixitError(f"replay data: {exc}") from None
    try:
        val_sampler = run.train_sampler if dev_recs is None else PairSampler(
            dev_recs, grid, cfg.chunk_duration, max_speakers, with_sources=with_sources)
    except PixitError as exc:
        raise PixitError(f"validation data: {exc}") from None
    run.val_set = FixedPairs(val_sampler, cfg.val_pairs, seed=cfg.seed + 1)

    annotated = sum(r.annotated_duration for r in train_recs)
    run.steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(annotated / (2 * cfg.batch_size * cfg.chunk_duration)))
    run.total_steps = cfg.max_steps or (cfg.epochs or 10) * run.steps_per_epoch
    if run.total_steps <= run.step_offset:
        raise PixitError(f"{out_dir}: already trained {run.step_offset} steps; give a larger --max-steps to go on")
    val_every = cfg.val_every or run.steps_per_epoch

    out_dir.mkdir(parents=True, exist_ok=True)
    launcher_zero = _launched_as_rank_zero()
    if launcher_zero and not resume:
        if run.model_dir.exists():
            shutil.rmtree(run.model_dir)  # a model from an earlier run in this folder would not match the metrics
        header = io.StringIO()
        csv.writer(header).writerow(METRIC_COLUMNS)
        atomic_write_text(run.metrics_path, header.getvalue())
    state = {
        "status": "running", "train": [str(r.audio) for r in train_recs],
        "dev": [str(r.audio) for r in dev_recs] if dev_recs is not None else None,
        "init": str(init) if init is not None else None, "config": asdict(cfg), "resumed_at": run.step_offset or None,
        "params_from": str(params_source) if params_source is not None else None,
        "model_config": model.config.to_dict(), "steps_per_epoch": run.steps_per_epoch,
        "total_steps": run.total_steps, "notes": notes,
    }
    if launcher_zero:
        atomic_write_json(out_dir / "train.json", state)

    run.report(0.0, f"training on {len(train_recs)} recording(s), {annotated / 60:.1f} min annotated; "
                    f"{run.total_steps} steps of {cfg.batch_size} pairs x {cfg.chunk_duration:g} s, "
                    f"validation every {val_every} steps on {len(run.val_set)} fixed pairs; "
                    f"lambda {cfg.lambda_:g}, K_max {max_speakers}"
                    + (f"; updating {cfg.update} ({trainable:,} parameters)" if cfg.update != "all" else "")
                    + (f"; {100 * cfg.replay_fraction:.0f}% of pairs replayed from {len(replay_recs)} recording(s)"
                       if replay_recs else ""))
    for note in notes:
        run.report(0.0, note)

    model.train()  # load_model returns eval mode
    module = PixitModule(model, cfg, run)
    status = "failed"
    with _quiet_lightning():
        trainer = pl.Trainer(
            accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=cfg.strategy,
            precision=cfg.precision or "32-true", max_steps=run.total_steps - run.step_offset, max_epochs=-1,
            check_val_every_n_epoch=None, val_check_interval=val_every, num_sanity_val_steps=0,
            gradient_clip_val=cfg.grad_clip or None, gradient_clip_algorithm="norm",
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=str(out_dir), deterministic=False,
        )
        run.is_zero = trainer.is_global_zero
        try:
            with _stop_on_signals(run):
                trainer.fit(module)
                if run.last_val_step != trainer.global_step + run.step_offset:  # the last steps were not validated yet
                    trainer.validate(module, dataloaders=module.val_dataloader(), verbose=False)
            if run.is_zero and not (run.model_dir / "config.json").is_file():
                raise Failed("no validation loss was finite, so no model was written")
            status = "done"
        except Failed as exc:
            state["error"] = str(exc)
            raise
        except Cancelled:
            status = "cancelled"
            raise
        except SystemExit:  # Lightning's own SIGTERM handling ends fit with SystemExit
            if not run.signalled:
                raise
            status = "cancelled"
            raise Interrupted(f"stopped by {signal.Signals(run.signalled).name}", run.signalled) from None
        finally:
            if run.signalled:
                state["stopped_by"] = signal.Signals(run.signalled).name
            if status == "cancelled" and trainer.global_step > 0:
                run.checkpoint(module)  # a stopped run resumes from here (pixit train --resume)
            state.update(status=status, steps=int(trainer.global_step) + run.step_offset, world_size=trainer.world_size,
                         best_step=run.best_step,
                         best_val_loss=run.best_loss if math.isfinite(run.best_loss) else None,
                         skipped_batches=run.skipped, sampler_stats=dict(run.train_sampler.stats))
            if run.is_zero:
                atomic_write_json(out_dir / "train.json", state)
                copy_tuned_params(params_source, run.model_dir)
    run.report(1.0, f"done: {trainer.global_step + run.step_offset} steps, best validation loss {run.best_loss:.4f} at step "
                    f"{run.best_step}; model in {run.model_dir}")
    return TrainResult(model_dir=run.model_dir, metrics_path=run.metrics_path, best_val_loss=run.best_loss,
                       best_step=run.best_step, steps=int(trainer.global_step) + run.step_offset,
                       history=list(run.history))
