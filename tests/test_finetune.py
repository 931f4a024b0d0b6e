"""Fine-tuning on corrections (core.finetune) and the adoption rule (core.adoption): validation cadence on
a short region, which parts learn, replay, re-tuned pipeline settings, bad corrections, cancel, the
rule with real models, and `pixit train --init` (the same function, the same defaults)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_config, write_corpus, write_meeting
from core.adoption import decide
from core.data import FrameGrid, PairSampler, ReplayMix, read_manifest
from core.errors import Cancelled, PixitError
from core.finetune import FinetuneSettings, finetune

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "demo"
# small enough for seconds per run; the shipped defaults are measured in tests/bench_retrain.py
FAST = dict(batch_size=2, chunk_duration=1.0, val_pairs=2)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from core.models import ToTaToNet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    ToTaToNet(tiny_config()).save(folder)
    return folder


@pytest.fixture(scope="module")
def corrected(tmp_path_factory) -> Path:
    """One 30 s corrected meeting (two speakers)."""
    return write_corpus(tmp_path_factory.mktemp("corrected"), num_meetings=1, duration=30.0, speakers=(2, 2), seed=5)


@pytest.fixture(scope="module")
def replay_cache():
    """The real replay data, in the per-machine cache the app and the CLI use (made once, ~40 s)."""
    from core.finetune import replay_data

    replay_data()
    return None  # finetune(replay_cache=None): that default cache


@pytest.fixture(scope="module")
def tuned_run(tiny_model_dir, corrected, replay_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "run"
    messages = []
    settings = FinetuneSettings(steps=6, val_every=3, warmup_steps=2, retune=True, **FAST)
    result = finetune(tiny_model_dir, corrected, out, settings=settings, replay_cache=replay_cache,
                      progress=lambda f, m: messages.append((f, m)))
    return out, result, messages


def test_validation_runs_every_few_steps_not_every_step(tuned_run):
    out, result, messages = tuned_run
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [3, 6]  # a 30 s region is ~1 "epoch" per step: not per epoch
    state = json.loads((out / "train.json").read_text())
    assert state["config"]["val_pairs"] == 2 and state["config"]["update"] == "late"
    assert state["config"]["replay_fraction"] == FinetuneSettings().replay_fraction
    fractions = [f for f, _ in messages]
    assert all(b >= a - 1e-9 for a, b in zip(fractions, fractions[1:])) and fractions[-1] == 1.0
    assert any("replayed from 4 recording(s)" in m for _, m in messages)


def test_warm_up_raises_the_learning_rate_and_late_parts_learn(tuned_run, tiny_model_dir):
    from safetensors.torch import load_file

    out, result, _ = tuned_run
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(result.model_dir / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "encoder.weight" not in changed and not any(k.startswith("masker.bottleneck") for k in changed)
    assert any(k.startswith("diarization.") for k in changed) and any(k.startswith("masker.blocks.0") for k in changed)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert float(rows[0]["lr"]) == pytest.approx(FinetuneSettings().lr)  # warm-up (2 steps) over by step 3


def test_pipeline_settings_are_retuned_into_the_new_model(tuned_run):
    out, result, _ = tuned_run
    params = json.loads((result.model_dir / "params.json").read_text())
    assert "metrics" in params and params["metrics"]["der"] <= params["metrics"]["baseline_der"]
    assert result.params["clustering_threshold"] == params["clustering_threshold"]


def test_the_corrected_speakers_get_profiles_in_the_new_model(tuned_run):
    from core.speakers import PROFILE_FILE, SpeakerProfiles

    out, result, _ = tuned_run
    assert result.speakers == ["spk0", "spk1"]
    assert SpeakerProfiles.load(result.model_dir / PROFILE_FILE).names == ["spk0", "spk1"]


def test_replay_mix_draws_its_share_from_each_sampler(corrected, replay_cache):
    from core.finetune import replay_data

    grid = FrameGrid(num_frames=50, step=320, size=320)
    main = PairSampler(read_manifest(corrected), grid, 1.0, 3)
    replay = PairSampler(replay_data(replay_cache), grid, 1.0, 3)
    mix = ReplayMix(main, replay, 0.25)
    rng = np.random.default_rng(0)
    draws = [mix.sample_pair(rng) for _ in range(400)]
    share = np.mean([from_replay for from_replay, _ in draws])
    assert 0.18 < share < 0.32
    item = mix.make_item(next(d for d in draws if d[0]))
    assert item["mix1"].shape == mix.make_item(next(d for d in draws if not d[0]))["mix1"].shape


def test_bad_corrections_are_refused_before_anything_is_written(tiny_model_dir, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    write_meeting(one, "solo", duration=12.0, num_speakers=1, seed=2)
    (one / "m.csv").write_text("audio,rttm,uem\nsolo.wav,solo.rttm,solo.uem\n")
    with pytest.raises(PixitError, match="only one speaker"):
        finetune(tiny_model_dir, one / "m.csv", tmp_path / "run1", settings=FinetuneSettings(**FAST))
    short = tmp_path / "short"
    short.mkdir()
    write_meeting(short, "m", duration=12.0, num_speakers=2, seed=2, uem=[(0.0, 3.0)])
    (short / "m.csv").write_text("audio,rttm,uem\nm.wav,m.rttm,m.uem\n")
    with pytest.raises(PixitError, match="at least 5 s"):
        finetune(tiny_model_dir, short / "m.csv", tmp_path / "run2", settings=FinetuneSettings(replay_fraction=0))
    assert not (tmp_path / "run1").exists() and not (tmp_path / "run2").exists()


def test_cancel_stops_fine_tuning(tiny_model_dir, corrected, replay_cache, tmp_path):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        finetune(tiny_model_dir, corrected, tmp_path / "run", settings=FinetuneSettings(steps=50, **FAST),
                 replay_cache=replay_cache, should_stop=stop)
    assert json.loads((tmp_path / "run" / "train.json").read_text())["status"] == "cancelled"


def _scrambled(model: str, folder: Path) -> Path:
    """The shipped model with its diarization head's last layer negated: a model that got worse."""
    from core.models import load_model
    from core.models.resolve import resolve_model

    net = load_model(model)
    with torch.no_grad():
        net.diarization.out.weight.neg_()
        net.diarization.out.bias.neg_()
    net.save(folder)
    shutil.copy(resolve_model(model).params_path, folder / "params.json")
    return folder


@pytest.mark.skipif(not (DEMO / "manifest.csv").is_file(), reason="no shipped demo meeting")
def test_decision_rule_with_real_models(tmp_path):
    """The shipped model against a broken copy of itself, on two parts of the demo meeting: the broken
    one never becomes current; the shipped one would replace the broken one."""
    rec = read_manifest(DEMO / "manifest.csv")[0]
    held, regression = _part(rec, 0.0, 15.0), _part(rec, 45.0, 60.0)
    worse = _scrambled("default", tmp_path / "worse")
    kept = decide("default", worse, [held], [regression])
    assert not kept.adopt and "not better on the held-out" in kept.reason
    assert len(kept.rows) == 4 and {r[1] for r in kept.rows} == {"held-out corrections", "regression set"}
    taken = decide(worse, "default", [held], [regression])
    assert taken.adopt and "not worse on the regression set" in taken.reason


def _part(rec, a: float, b: float):
    from dataclasses import replace

    from pyannote.core import Segment, Timeline

    return replace(rec, uem=Timeline([Segment(a, b)], uri=rec.uri))


def test_cli_init_fine_tunes_with_the_app_defaults_and_compares(tiny_model_dir, corrected, replay_cache, tmp_path):
    dev = write_corpus(tmp_path / "dev", num_meetings=1, duration=12.0, speakers=(2, 2), seed=9)
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "core.cli", "train", "--init", str(tiny_model_dir), "--train",
                           str(corrected), "--dev", str(dev), "--out", str(tmp_path / "run"), "--max-steps", "2",
                           "--batch-size", "2", "--chunk-duration", "1", "--val-pairs", "2", "--accelerator", "cpu", "--retune",
                           "--regression", "none"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "updating late" in out and "replayed from 4 recording(s)" in out and "re-tuned" in out
    assert "fine-tuned | held-out corrections" in out and ("\nbetter: " in out or "\nnot better: " in out)
    state = json.loads((tmp_path / "run" / "train.json").read_text())
    assert state["config"]["val_every"] == FinetuneSettings().val_every  # the app's default
    bad = subprocess.run([sys.executable, "-m", "core.cli", "train", "--train", str(corrected), "--out",
                          str(tmp_path / "x"), "--replay-fraction", "0.5"], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, env=env)
    assert bad.returncode == 2 and "is for fine-tuning" in bad.stderr
