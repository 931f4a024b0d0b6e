"""Resumable training (core/checkpoint.py, `pixit train --resume`): a stopped run goes on where it was."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.checkpoint import CHECKPOINT_DIR, read_state, restore_optimizer, save_checkpoint
from core.errors import PixitError
from core.training import TrainConfig, train

from conftest import tiny_config, write_corpus

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
TINY = dict(batch_size=2, chunk_duration=1.0, val_pairs=4, accelerator="cpu", devices=1, val_every=3, seed=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), num_meetings=2, duration=12.0, seed=5)


def _steps(run: Path) -> list[int]:
    with open(run / "metrics.csv") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def test_optimizer_round_trip(tmp_path):
    from core.models.totatonet import ToTaToNet

    model = ToTaToNet(tiny_config())
    opt = torch.optim.Adam(model.parameter_groups(lr=1e-3, ssl_lr=1e-5))
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    for _ in range(2):
        sources, _ = model(torch.randn(1, 16000))
        sources.pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    plateau.step(1.0)
    plateau.step(2.0)  # no improvement: LR halved
    save_checkpoint(tmp_path, model, opt, plateau, step=2, best_loss=1.0, best_step=1)
    files = sorted(p.name for p in (tmp_path / CHECKPOINT_DIR).iterdir())
    assert files == ["config.json", "model.safetensors", "optimizer.safetensors", "state.json"]  # no pickle
    other = ToTaToNet(tiny_config())
    opt2 = torch.optim.Adam(other.parameter_groups(lr=1e-3, ssl_lr=1e-5))
    plateau2 = torch.optim.lr_scheduler.ReduceLROnPlateau(opt2, factor=0.5, patience=0)
    restore_optimizer(tmp_path, opt2, plateau2, read_state(tmp_path))
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups] == [5e-4]
    before, after = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert sorted(before) == sorted(after) and before
    for index, moments in before.items():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(moments[key]), torch.as_tensor(after[index][key])), (index, key)
    assert plateau2.num_bad_epochs == plateau.num_bad_epochs and plateau2.best == plateau.best


def test_resume_goes_on_with_steps_and_metrics(corpus, tmp_path):
    run = tmp_path / "run"
    first = train(corpus, run, config=TrainConfig(max_steps=6, **TINY), model_config=tiny_config())
    state = read_state(run)
    assert state["step"] == 6 and _steps(run) == [3, 6] and first.steps == 6
    best_before = first.best_val_loss
    second = train(corpus, run, config=TrainConfig(max_steps=10, **TINY), resume=True)
    assert second.steps == 10 and _steps(run) == [3, 6, 9, 10]
    assert second.best_val_loss <= best_before
    status = json.loads((run / "train.json").read_text())
    assert status["status"] == "done" and status["steps"] == 10 and status["resumed_at"] == 6
    assert read_state(run)["step"] == 10
    with pytest.raises(PixitError, match="already trained 10 steps"):
        train(corpus, run, config=TrainConfig(max_steps=10, **TINY), resume=True)


def test_resume_needs_a_checkpoint_and_no_other_model(corpus, tmp_path):
    with pytest.raises(PixitError, match="no checkpoint"):
        train(corpus, tmp_path / "empty", config=TrainConfig(max_steps=2, **TINY), resume=True)
    proc = subprocess.run([sys.executable, "-m", "core.cli", "train", "--train", str(corpus), "--out", str(tmp_path / "r"),
                           "--resume", "--init", "default"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("pixit train: error: --resume") and "Traceback" not in proc.stderr
