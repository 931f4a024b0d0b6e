"""PixIT training end to end on a tiny model: run folder, metrics, fine-tuning, cancellation, CLI."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import Cancelled, PixitError
from core.training import METRIC_COLUMNS, TrainConfig, der_counts, train

from conftest import write_corpus

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parent.parent
TINY = dict(batch_size=2, chunk_duration=1.0, val_pairs=4, accelerator="cpu", devices=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), num_meetings=2, duration=12.0, seed=3)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """One tiny run shared by several tests: 4 steps, validation every 2."""
    from conftest import tiny_config

    out = tmp_path_factory.mktemp("run")
    messages = []
    result = train(corpus, out, config=TrainConfig(max_steps=4, val_every=2, seed=1, **TINY),
                   model_config=tiny_config(), progress=lambda f, m: messages.append((f, m)))
    return out, result, messages


def test_train_writes_loadable_model_and_metrics(trained):
    from core.models import load_model

    out, result, messages = trained
    assert result.model_dir == out / "model" and result.metrics_path == out / "metrics.csv"
    model = load_model(result.model_dir)
    assert model.config.n_filters == 16
    sources, activations = model(torch.zeros(1, 16000))
    assert sources.shape == (1, 3, 16000) and activations.shape[:2] == (1, 3)
    assert sorted(p.name for p in result.model_dir.iterdir()) == ["config.json", "model.safetensors"]
    assert not list(out.rglob("*.ckpt"))  # Lightning checkpoints are off: safetensors only
    with open(result.metrics_path) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0].keys()) == METRIC_COLUMNS
    assert [int(r["step"]) for r in rows] == [2, 4] and result.steps == 4
    for row in rows:
        for key in ("train_loss", "train_pit", "train_mixit", "val_loss", "val_pit", "val_mixit",
                    "val_mom_sisdr", "val_der", "lr"):
            assert np.isfinite(float(row[key])), key
        assert float(row["val_loss"]) == pytest.approx(0.5 * float(row["val_pit"]) + 0.5 * float(row["val_mixit"]), rel=1e-4)
        assert 0.0 <= float(row["val_der"]) and float(row["lr"]) == pytest.approx(3e-4)
    assert result.best_val_loss == pytest.approx(min(float(r["val_loss"]) for r in rows), rel=1e-5)
    state = json.loads((out / "train.json").read_text())
    assert state["status"] == "done" and state["steps"] == 4 and "overlap the training audio" in state["notes"][0]
    # progress: called every step with increasing fractions, ending at 1
    fractions = [f for f, _ in messages]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert sum(m.startswith("step ") for _, m in messages) == 4
    assert any("validation at step 4" in m for _, m in messages)


def test_best_model_is_the_lowest_validation_loss(trained, corpus):
    """Re-validating the exported model on the same fixed pairs gives the best logged loss."""
    from core.data import FixedPairs, FrameGrid, PairSampler, read_manifest
    from core.losses import pixit_loss
    from core.models import load_model

    out, result, _ = trained
    model = load_model(result.model_dir)
    grid = FrameGrid.from_model(model, 1.0)
    val = FixedPairs(PairSampler(read_manifest(corpus), grid, 1.0, 3), 4, seed=1 + 1)
    batch = torch.utils.data.default_collate([val[i] for i in range(4)])
    with torch.no_grad():
        b = 4
        sources, act = model(torch.cat([batch["mix1"], batch["mix2"], batch["mix1"] + batch["mix2"]]))
        a1, a2, am = act.split(b)
        loss = pixit_loss(a1, a2, am, batch["y1"], batch["y2"], batch["y_mom"], sources[2 * b:], batch["mix1"], batch["mix2"])
    assert loss.loss.item() == pytest.approx(result.best_val_loss, rel=1e-3, abs=1e-3)


def test_fine_tune_from_init_diarization_only_with_supervision(trained, corpus, tmp_path):
    from core.models import load_model

    from core.pipeline import PipelineParams

    _, first, _ = trained
    PipelineParams(threshold=0.35).save(first.model_dir / "params.json")  # tuned for the initial model
    result = train(corpus, tmp_path / "ft", init=first.model_dir,
                   config=TrainConfig(max_steps=2, val_every=2, lambda_=1.0, sup_weight=0.5, **TINY))
    init, tuned = load_model(first.model_dir), load_model(result.model_dir)
    assert init.config == tuned.config
    changed = [not torch.equal(a, b) for a, b in zip(init.state_dict().values(), tuned.state_dict().values())]
    assert any(changed)
    row = result.history[-1]
    assert row["train_mixit"] == 0.0 and row["train_sup"] != 0.0  # lambda=1: no MixIT; supervised term on
    assert row["val_loss"] == pytest.approx(row["val_pit"] + 0.5 * row["val_sup"], rel=1e-4)
    state = json.loads((tmp_path / "ft" / "train.json").read_text())
    assert state["init"] == str(first.model_dir)
    assert PipelineParams.load(result.model_dir / "params.json").threshold == 0.35  # inherited
    with pytest.raises(PixitError, match="not both"):
        train(corpus, tmp_path / "x", init=first.model_dir, model_config={"n_filters": 8}, config=TrainConfig(**TINY))


def test_should_stop_cancels_cleanly_and_holds_out_recordings(tmp_path, tiny_model_config):
    manifest = write_corpus(tmp_path / "five", num_meetings=5, duration=6.0, seed=4)
    calls = itertools.count()
    with pytest.raises(Cancelled):
        train(manifest, tmp_path / "run", config=TrainConfig(max_steps=50, **TINY), model_config=tiny_model_config,
              should_stop=lambda: next(calls) >= 2)
    state = json.loads((tmp_path / "run" / "train.json").read_text())
    assert state["status"] == "cancelled" and state["steps"] == 2
    assert "held-out" in state["notes"][0] and len(state["dev"]) == 1 and len(state["train"]) == 4
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert header == [",".join(METRIC_COLUMNS)]  # no validation happened: header only, no model
    assert not (tmp_path / "run" / "model").exists()


def test_bad_settings_are_pixit_errors(corpus, tmp_path, tiny_model_config):
    with pytest.raises(PixitError, match="lambda"):
        train(corpus, tmp_path / "r", config=TrainConfig(lambda_=1.5), model_config=tiny_model_config)
    with pytest.raises(PixitError, match="at least 20 s"):
        train(corpus, tmp_path / "r", config=TrainConfig(chunk_duration=20.0, accelerator="cpu"), model_config=tiny_model_config)


def test_der_counts_against_loops():
    g = torch.Generator().manual_seed(0)
    act = torch.rand(5, 3, 40, generator=g)
    ref = (torch.rand(5, 3, 40, generator=g) > 0.6).float()
    fa, miss, conf, speech = der_counts(act, ref).tolist()
    hyp = (act > 0.5).float()
    best = None
    totals = np.zeros(4)
    for b in range(5):
        best = None
        for p in itertools.permutations(range(3)):
            h = hyp[b, list(p)]
            matches = (ref[b] * h).sum().item()
            if best is None or matches > best[0]:
                best = (matches, h)
        h = best[1]
        for f in range(40):
            n_ref, n_hyp = ref[b, :, f].sum().item(), h[:, f].sum().item()
            correct = (ref[b, :, f] * h[:, f]).sum().item()
            totals += [max(0, n_hyp - n_ref), max(0, n_ref - n_hyp), min(n_ref, n_hyp) - correct, n_ref]
    assert [fa, miss, conf, speech] == pytest.approx(totals.tolist())
    # a perfect (permuted) prediction has no error
    assert der_counts(ref[:, [2, 0, 1]], ref)[:3].sum().item() == 0


def _pixit(*args, cwd=ROOT):
    env = {"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}  # this checkout's code
    return subprocess.run([str(ROOT / ".venv" / "bin" / "pixit"), "train", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=240, env=env)


def test_cli_trains_and_prints_progress(corpus, tmp_path, tiny_model_config):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_model_config.to_dict()))
    proc = _pixit("--train", str(corpus), "--out", str(tmp_path / "cli"), "--max-steps", "2", "--batch-size", "2",
                  "--chunk-duration", "1", "--val-pairs", "2", "--config", str(config), "--accelerator", "cpu",
                  "--lambda", "0.5", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert "validation at step 2" in proc.stdout and "model:" in proc.stdout
    assert (tmp_path / "cli" / "model" / "model.safetensors").is_file()


def test_cli_bad_manifest_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("audio,rttm\nnothere.wav,nothere.rttm\n")
    proc = _pixit("--train", str(bad), "--out", str(tmp_path / "run"), "--max-steps", "1")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "bad.csv row 2" in proc.stderr and "nothere.wav" in proc.stderr


@pytest.mark.slow
def test_learns_on_synthetic_meetings(tmp_path, tiny_model_config):
    """A couple of minutes on CPU: the diarization loss falls, MoM SI-SDR and DER improve."""
    manifest = write_corpus(tmp_path / "c", num_meetings=4, duration=30.0, seed=7)
    result = train(manifest, tmp_path / "run", model_config=tiny_model_config,
                   config=TrainConfig(max_steps=150, val_every=50, batch_size=4, chunk_duration=1.0, val_pairs=16,
                                      lr=1e-3, accelerator="cpu", devices=1))
    first, last = result.history[0], result.history[-1]
    assert last["val_pit"] < first["val_pit"]
    assert last["val_mom_sisdr"] > first["val_mom_sisdr"]
    assert last["val_der"] <= first["val_der"]
