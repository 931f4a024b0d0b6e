"""Resumable training: RUN/checkpoint/ holds what `pixit train --resume` needs to go on.

Why: long CPU runs get killed (session ends, SIGTERM, a reboot) and GPU time comes in slices. The
checkpoint is a model folder (config.json + model.safetensors, so it also loads as a model) plus
optimizer.safetensors (Adam's moments, one tensor per parameter and moment) and state.json (the
optimizer's parameter groups and learning rates, the LR plateau scheduler, the step count, the best
validation loss so far). Nothing is pickled, so a checkpoint from elsewhere cannot run code.
Written atomically (a temporary folder renamed into place) at every validation and when training
is stopped by a signal.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import torch

from core.errors import PixitError

CHECKPOINT_DIR = "checkpoint"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"


def save_checkpoint(run_dir: Path, model, optimizer: torch.optim.Optimizer, scheduler, step: int,
                    best_loss: float, best_step: int, elapsed: float = 0.0) -> Path:
    """Write run_dir/checkpoint atomically; returns its path."""
    from safetensors.torch import save_file

    target = Path(run_dir) / CHECKPOINT_DIR
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".checkpoint-"))
    try:
        model.save(tmp / "model")
        for name in ("config.json", "model.safetensors"):
            (tmp / "model" / name).replace(tmp / name)
        shutil.rmtree(tmp / "model")
        opt = optimizer.state_dict()
        tensors = {f"{index}.{key}": value.detach().cpu().contiguous()
                   for index, moments in opt["state"].items() for key, value in moments.items()
                   if isinstance(value, torch.Tensor)}
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        state = {"step": int(step), "best_loss": best_loss if math.isfinite(best_loss) else None,
                 "best_step": int(best_step), "elapsed_s": float(elapsed), "param_groups": opt["param_groups"],
                 "scheduler": scheduler.state_dict() if scheduler is not None else None}
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1, default=_plain), encoding="utf-8")
        old = target.with_name(f".{CHECKPOINT_DIR}-old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _plain(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def read_state(run_dir: Path) -> dict:
    """state.json of run_dir/checkpoint; a one-line PixitError when there is none."""
    path = Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        raise PixitError(f"{run_dir}: no checkpoint to resume from (expected {CHECKPOINT_DIR}/{STATE_FILE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PixitError(f"{path}: unreadable checkpoint state ({str(exc).splitlines()[0]})") from None


def restore_optimizer(run_dir: Path, optimizer: torch.optim.Optimizer, scheduler, state: dict) -> None:
    """Load Adam's moments, the parameter groups' learning rates and the plateau scheduler."""
    from safetensors.torch import load_file

    tensors = load_file(str(Path(run_dir) / CHECKPOINT_DIR / OPTIMIZER_FILE))
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        moments.setdefault(int(index), {})[name] = value
    groups = state["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    if len(groups) != len(optimizer.param_groups) or any(
            len(a["params"]) != len(b["params"]) for a, b in zip(groups, optimizer.param_groups)):
        raise PixitError("the checkpoint's optimizer does not match the model (another architecture?)")
    optimizer.load_state_dict({"state": moments, "param_groups": groups})
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
