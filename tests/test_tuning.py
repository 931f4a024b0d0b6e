"""Tuning: the model runs once per dev file, the grid is searched on cached outputs, and the result
is a PipelineParams JSON that the pipeline loads."""

from __future__ import annotations

import json

import pytest
import torch

from core.pipeline import PipelineParams
from core.tuning import tune

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def dev_set(tmp_path_factory):
    from conftest import write_corpus

    return write_corpus(tmp_path_factory.mktemp("dev"), num_meetings=2, duration=8.0, seed=4)


@pytest.fixture(scope="module")
def tiny_model():
    from core.models.totatonet import ToTaToNet
    from conftest import pipeline_model_config

    torch.manual_seed(0)
    model = ToTaToNet(pipeline_model_config()).eval()
    model.calls = 0

    def count(module, inputs):  # windows through the masker: the whole forward and `analyse` alike
        model.calls += inputs[0].shape[0]

    model.masker.register_forward_pre_hook(count)
    return model


def test_tune_runs_model_once_per_file_and_writes_params(dev_set, tiny_model, tmp_path):
    fractions = []
    params = PipelineParams(embedding="mfcc", batch_size=16)
    result = tune(dev_set, tiny_model, params, device="cpu", thresholds=(0.4, 0.6), clustering_thresholds=(0.5, 1.0),
                  min_durations_off=(0.0, 0.2), collars=(0.0, 0.5), progress=lambda f, m: fractions.append(f))
    # 8 s files, 5 s windows every 0.5 s: 7 windows each, seen once
    assert tiny_model.calls == 2 * 7
    assert fractions[-1] == 1.0
    assert result.der <= result.baseline_der
    assert len(result.history) == 3 * 3 + 2  # (theta x delta grid incl. the starting values) + min_duration_off
    assert result.params.threshold in (0.4, 0.5, 0.6) and result.params.clustering_threshold in (0.5, 0.6, 1.0)
    assert set(result.collar_scores) <= {0.0, 0.5}
    out = tmp_path / "params.json"
    result.save(out)
    loaded = PipelineParams.load(out)
    assert loaded == result.params
    assert json.loads(out.read_text())["metrics"]["der"] == pytest.approx(result.der)


def test_tune_tries_the_vad_stage(dev_set, tiny_model):
    """With vad options, the VAD stage is evaluated on the best settings (the VAD runs once per file)
    and kept only if it lowers the DER."""
    from core import vad

    if not vad.available():
        pytest.skip("silero-vad is not installed")
    params = PipelineParams(embedding="mfcc", batch_size=16)
    result = tune(dev_set, tiny_model, params, device="cpu", thresholds=(0.5,), clustering_thresholds=(0.6,),
                  min_durations_off=(0.0,), collars=(), vad_options=("silero", "silero+gate"))
    tried = {h.get("vad"): h["der"] for h in result.history if "vad" in h}
    assert set(tried) == {"silero", "silero+gate"}
    assert result.der == pytest.approx(min([result.baseline_der, *[h["der"] for h in result.history]]))
    if result.params.vad == "silero":
        assert min(tried.values()) == pytest.approx(result.der)


def test_tune_chooses_the_largest_step_within_the_der_tolerance(dev_set, tiny_model):
    """Each step gets its own search (the model runs once per file and step); the largest step whose
    best DER is within the tolerance of the best step is kept, with min_cluster_size scaled."""
    params = PipelineParams(embedding="mfcc", batch_size=16, step=0.5, min_cluster_size=3)
    grid = dict(device="cpu", thresholds=(0.5,), clustering_thresholds=(0.6, 1.0), min_durations_off=(0.0,), collars=())
    tiny_model.calls = 0
    anything = tune(dev_set, tiny_model, params, steps=(1.0,), max_der_increase=1.0, **grid)
    # 8 s files: 7 windows at 0.5 s, 4 at 1 s (starts 0, 1, 2, 3), each file once per step
    assert tiny_model.calls == 2 * (7 + 4)
    assert anything.params.step == 1.0 and anything.params.min_cluster_size == 2
    assert {row["step"] for row in anything.history} == {0.5, 1.0}
    assert "sliding step 1 s kept" in anything.notes[0]

    best_of = {step: min(row["der"] for row in anything.history if row["step"] == step) for step in (0.5, 1.0)}
    best_of[0.5] = min(best_of[0.5], anything.baseline_der)  # the starting parameters are at step 0.5
    strict = tune(dev_set, tiny_model, params, steps=(1.0,), max_der_increase=0.0, **grid)
    lowest = min(best_of.values())
    assert strict.params.step == max(step for step, der in best_of.items() if der <= lowest + 1e-9)
    assert strict.der == pytest.approx(lowest)
    assert strict.baseline_der == pytest.approx(anything.baseline_der)
