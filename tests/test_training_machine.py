"""Training that fits the machine: the architecture chosen for the device, the memory check before a
step that would not fit, train.json after a signal, and two-process (DDP, gloo) training through the
real command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.errors import PixitError
from core.training import TrainConfig, default_model_config, train

from conftest import pipeline_model_config, write_corpus

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(batch_size=2, chunk_duration=1.0, val_pairs=4, accelerator="cpu", devices=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), num_meetings=3, duration=12.0, seed=5)


def pixit(*args, cwd=ROOT, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "core.cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_cpu_trains_the_shipped_architecture_and_says_so(corpus, tmp_path):
    result = train(corpus, tmp_path / "run", config=TrainConfig(max_steps=1, **TINY))
    shipped = json.loads((ROOT / "assets" / "models" / "default" / "config.json").read_text())
    state = json.loads((tmp_path / "run" / "train.json").read_text())
    assert state["model_config"] == {k: v for k, v in shipped.items() if k not in ("format", "version")}
    assert "shipped default model's architecture" in state["notes"][0]
    assert result.steps == 1
    paper, why = default_model_config(gpu=True)
    assert paper.n_filters == 64 and paper.stride == 16 and "paper" in why


def test_memory_estimate_scales_and_leaves_no_fake_tensors_behind():
    from core.losses import mixit_loss, pit_bce
    from core.memory import training_estimate

    config = pipeline_model_config()
    one, four = training_estimate(config, 1, 1.0), training_estimate(config, 4, 1.0)
    assert one.fixed == four.fixed and one.per_item == four.per_item > 0
    assert four.total == one.fixed + 4 * one.per_item
    longer = training_estimate(config, 1, 2.0)
    assert 1.6 * one.per_item < longer.per_item < 2.4 * one.per_item  # activations grow with the chunk
    # the trace ran the real losses under fake tensors; their caches must still give real tensors
    est, mix = torch.randn(2, 3, 800), torch.randn(2, 2, 800)
    assert torch.isfinite(mixit_loss(est, mix)).all()
    assert torch.isfinite(pit_bce(torch.rand(2, 3, 10), torch.ones(2, 3, 10))).all()


def test_a_step_that_does_not_fit_is_refused_before_training(corpus, tmp_path):
    paper, _ = default_model_config(gpu=True)  # ~7 GB per 5 s pair on a CPU: 256 pairs fit nowhere
    with pytest.raises(PixitError, match=r"needs about .* GB per training step .* use --batch-size \d+ or lower"):
        train(corpus, tmp_path / "run", model_config=paper,
              config=TrainConfig(max_steps=1, batch_size=256, chunk_duration=5.0, accelerator="cpu"))
    assert not (tmp_path / "run" / "train.json").exists()  # refused before anything was written
    proc = pixit("train", "--train", corpus, "--out", tmp_path / "cli", "--batch-size", "100000", "--max-steps", "1",
                 "--accelerator", "cpu")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("pixit train: error: batch 100000 x 5 s chunk pairs needs about")


def test_sigterm_marks_the_run_cancelled(corpus, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(pipeline_model_config()))
    run = tmp_path / "run"
    proc = pixit("train", "--train", corpus, "--out", run, "--config", config, "--max-steps", "100000",
                 "--batch-size", "2", "--chunk-duration", "1", "--val-pairs", "2", "--val-every", "2",
                 "--accelerator", "cpu")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (run / "model" / "config.json").is_file():
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.5)
    assert (run / "model" / "config.json").is_file(), "no validation within 4 minutes"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "pixit train: stopped by SIGTERM"
    state = json.loads((run / "train.json").read_text())
    assert state["status"] == "cancelled" and state["stopped_by"] == "SIGTERM" and state["steps"] >= 2
    from core.models import load_model

    load_model(run / "model")  # the best model so far is complete


def test_two_cpu_processes_train_one_model(corpus, tmp_path):
    """DDP over gloo through `pixit train --devices 2 --strategy ddp`: both ranks step together, rank 0
    alone writes the run folder, and the result loads."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(pipeline_model_config()))
    run = tmp_path / "run"
    proc = pixit("train", "--train", corpus, "--out", run, "--config", config, "--max-steps", "4", "--val-every", "2",
                 "--batch-size", "2", "--chunk-duration", "1", "--val-pairs", "4", "--accelerator", "cpu",
                 "--devices", "2", "--strategy", "ddp")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    state = json.loads((run / "train.json").read_text())
    assert state["status"] == "done" and state["steps"] == 4 and state["world_size"] == 2
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 and [r.split(",")[0] for r in rows[1:]] == ["2", "4"]  # one row per validation
    assert sorted(p.name for p in (run / "model").iterdir()) == ["config.json", "model.safetensors"]
    assert out.count("validation at step 4") == 1  # printed by rank 0 only
    from core.models import load_model

    load_model(run / "model")


def test_tracing_leaves_models_in_other_threads_alone():
    """The app traces in a worker thread while other sessions run their models: no hook or global
    switch of the trace may reach them (torch's MemTracker hooks every module and broke them)."""
    import threading

    from core.memory import inference_estimate, training_estimate
    from core.models.totatonet import ToTaToNet

    model = ToTaToNet(pipeline_model_config()).eval()
    errors, runs, done = [], [0], threading.Event()

    def run_model():
        try:
            while not done.is_set():
                with torch.inference_mode():
                    model(torch.randn(2, 8000))
                runs[0] += 1
        except Exception as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=run_model)
    worker.start()
    try:
        for _ in range(2):
            assert inference_estimate(model, 4, 16000) is not None
            assert training_estimate(pipeline_model_config(), 2, 1.0) is not None
    finally:
        done.set()
        worker.join()
    assert not errors and runs[0] > 0
