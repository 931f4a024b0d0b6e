"""Pipeline end to end: a tiny randomly initialised ToTaToNet saved/loaded through the real code
path, plus a deterministic energy-based stub for the edge cases (short audio, silence, speaker
counts, cancellation) and the whole-pipeline memory bound."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import torch

from core.errors import Cancelled, PixitError
from core.pipeline import Pipeline, PipelineParams, SeparationResult

torch.set_num_threads(2)
SR = 16000


class EnergyStub(torch.nn.Module):
    """Local speaker 0 = the whole mixture, active where the frame energy is high; others silent."""

    frame_step, frame_size = 128, 256

    def __init__(self, n_local: int = 2):
        super().__init__()
        self.n_local = n_local
        self.calls = 0

    def num_frames(self, n):
        return ((n - 32) // 16 + 1) // 8

    def forward(self, x):
        B, W = x.shape
        F = self.num_frames(W)
        frames = x[:, : F * 128].reshape(B, F, 128)
        energy = frames.pow(2).mean(-1)
        acts = torch.zeros(B, self.n_local, F)
        acts[:, 0] = (energy > 1e-4).float() * 0.9 + 0.05
        acts[:, 1:] = 0.01
        sources = torch.zeros(B, self.n_local, W)
        sources[:, 0] = -2.0 * x  # arbitrary gain and sign
        self.calls += B
        return sources, acts


def tone_bursts(duration: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * SR)) / SR
    wav = 0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.3 * t) > -0.3)
    return (wav + 1e-3 * rng.standard_normal(len(t))).astype(np.float32)


def test_tiny_model_end_to_end(tiny_model_dir, tmp_path):
    audio = tone_bursts(8.0)
    fractions = []
    pipe = Pipeline(tiny_model_dir, PipelineParams(batch_size=8), device="auto")  # resemblyzer: the offline default
    assert pipe.device == ("cuda" if torch.cuda.is_available() else "cpu")
    result = pipe(audio, uri="meeting", progress=lambda f, m: fractions.append(f))
    assert isinstance(result, SeparationResult)
    assert fractions and fractions[-1] == 1.0 and all(b >= a - 1e-9 for a, b in zip(fractions, fractions[1:]))
    n_spk = len(result.labels)
    assert result.sources.shape == (len(audio), n_spk) and result.sources.dtype == np.float32
    assert result.activations.data.shape[1] == n_spk and result.activations.data.dtype == np.float32
    assert abs(result.activations.data.shape[0] * 0.008 - 8.0) < 0.05
    assert sorted(result.annotation.labels()) == result.labels
    assert set(result.timings) >= {"inference", "embeddings", "clustering", "stitching", "total"}
    paths = result.save(tmp_path / "out")
    summary = json.loads(paths["json"].read_text())
    assert summary["duration"] == 8.0 and summary["num_speakers"] == n_spk
    assert summary["params"]["embedding"] == "resemblyzer" and str(tiny_model_dir) in summary["model"]
    for label in result.labels:
        assert (tmp_path / "out" / "meeting" / f"{label}.wav").is_file()
    assert (tmp_path / "out" / "meeting.rttm").read_text().count("SPEAKER meeting 1") == len(result.annotation)


def test_short_audio_is_padded_to_one_window(tmp_path):
    audio = tone_bursts(1.3)
    result = Pipeline(EnergyStub(), PipelineParams(embedding="mfcc", min_embedding_duration=0.3), device="cpu")(audio, uri="short")
    assert result.labels == ["SPEAKER_00"]
    assert result.sources.shape == (len(audio), 1)
    assert result.annotation.get_timeline().extent().end <= 1.3 + 1e-6
    # the stitched source follows the mixture scale despite the stub's gain of -2
    corr = np.dot(result.sources[:, 0], audio) / np.dot(audio, audio)
    assert 0.95 < corr < 1.05
    result.save(tmp_path)


def test_silence_gives_empty_result(tmp_path):
    result = Pipeline(EnergyStub(), PipelineParams(embedding="mfcc"), device="cpu")(np.zeros(7 * SR, np.float32), uri="quiet")
    assert len(result.annotation) == 0 and result.labels == []
    assert result.sources.shape == (7 * SR, 0)
    paths = result.save(tmp_path)
    assert paths["rttm"].read_text() == ""
    assert json.loads(paths["json"].read_text())["speakers"] == []


def test_speaker_count_options():
    audio = tone_bursts(6.0)  # three windows: at most three speaker embeddings
    pipe = Pipeline(EnergyStub(), PipelineParams(embedding="mfcc"), device="cpu")
    with pytest.warns(UserWarning, match="num_speakers=5"):
        result = pipe(audio, num_speakers=5)
    assert any("num_speakers=5" in w for w in result.warnings)
    assert len(result.labels) <= 3
    assert result.speaker_note.startswith(f"5 speakers asked for, {len(result.labels)} found: only ")
    assert result.speaker_note in result.warnings and pipe(audio).speaker_note == ""  # auto: nothing asked
    for bad in ({"num_speakers": 0}, {"min_speakers": 3, "max_speakers": 2}, {"num_speakers": 2, "max_speakers": 1}):
        with pytest.raises(PixitError):
            pipe(audio, **bad)


def test_a_speaker_shortfall_says_why():
    from core.pipeline.runner import speaker_shortfall

    assert speaker_shortfall(2, 2, 1, 0.5, 0.1) == (
        "2 speakers asked for, 1 found: 1 of the 2 speaker clusters never had speech above the activation "
        "threshold 0.5 for 0.1 s (the model heard that voice as one with the others)")
    assert speaker_shortfall(3, 1, 1, 0.5, 0.1).startswith("3 speakers asked for, 1 found: only 1 speaker cluster")
    assert speaker_shortfall(2, 2, 2, 0.5, 0.1) == speaker_shortfall(None, 2, 1, 0.5, 0.1) == ""


def test_clustering_subset_for_many_embeddings(monkeypatch):
    import core.pipeline.assignment as assignment_module

    audio = tone_bursts(12.0)
    pipe = Pipeline(EnergyStub(), PipelineParams(embedding="mfcc"), device="cpu")
    full = pipe(audio)
    monkeypatch.setattr(assignment_module, "MAX_CLUSTERING_EMBEDDINGS", 4)
    capped = pipe(audio)
    assert capped.labels == full.labels and len(capped.annotation) == len(full.annotation)


def test_should_stop_cancels():
    pipe = Pipeline(EnergyStub(), PipelineParams(embedding="mfcc", batch_size=4), device="cpu")
    with pytest.raises(Cancelled):
        pipe(tone_bursts(20.0), should_stop=lambda: pipe.model.calls >= 8)
    assert pipe.model.calls == 8


def test_no_sources_mode():
    result = Pipeline(EnergyStub(), PipelineParams(embedding="mfcc"), device="cpu")(tone_bursts(6.0), return_sources=False)
    assert result.sources is None and result.labels == ["SPEAKER_00"]


def test_params_roundtrip_and_validation(tmp_path):
    params = PipelineParams(threshold=0.4, clustering_threshold=0.9, leakage_collar=0.1)
    params.save(tmp_path / "p.json")
    assert PipelineParams.load(tmp_path / "p.json") == params
    (tmp_path / "bad.json").write_text('{"threshold": 0.5, "treshold": 0.3}')
    with pytest.raises(PixitError, match="treshold"):
        PipelineParams.load(tmp_path / "bad.json")
    with pytest.raises(PixitError):
        PipelineParams(threshold=1.5)
    with pytest.raises(PixitError):
        PipelineParams(step=6.0)


def test_pipeline_uses_the_params_tuned_for_its_model(tiny_model_dir, tmp_path):
    import shutil

    assert Pipeline(tiny_model_dir, device="cpu").params == PipelineParams()
    folder = tmp_path / "tuned"
    shutil.copytree(tiny_model_dir, folder)
    PipelineParams(threshold=0.3, step=1.0).save(folder / "params.json")
    assert Pipeline(folder, device="cpu").params == PipelineParams(threshold=0.3, step=1.0)
    assert Pipeline(folder, PipelineParams(threshold=0.7), device="cpu").params.threshold == 0.7


def test_whole_pipeline_memory_is_linear():
    """0.5 and 1.5 minutes through the whole pipeline (stub model): the traced peak grows by about
    waveform 4 B + source cache 2 (overlap) x 2 local x 2 B + output 4 B per sample, far below
    chunks x window (what keeping every chunk's sources costs); without the cache (long
    recordings: the separation chunks are recomputed) by the waveform and the output only."""
    audio = tone_bursts(90.0, seed=1)
    per_sample = {}
    for cache_minutes in (20.0, 0.0):
        pipe = Pipeline(EnergyStub(), PipelineParams(embedding="mfcc", batch_size=32, source_cache_minutes=cache_minutes), device="cpu")
        pipe(audio[: 6 * SR])  # imports and caches are not what we measure
        peaks = {}
        for minutes in (0.5, 1.5):
            clip = audio[: int(minutes * 60 * SR)]
            tracemalloc.start()
            result = pipe(clip)
            peaks[minutes] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert result.sources.shape == (len(clip), 1)
        per_sample[cache_minutes] = (peaks[1.5] - peaks[0.5]) / (60 * SR)
    # keeping every chunk's sources would add (window / step) x 2 sources x 4 B = 80 B per sample
    assert per_sample[20.0] < 24, f"{per_sample[20.0]:.1f} bytes per extra sample with the cache"
    assert per_sample[0.0] < 12, f"{per_sample[0.0]:.1f} bytes per extra sample without the cache"
    assert per_sample[0.0] < per_sample[20.0] - 6, per_sample


def test_decoding_only_the_sources_used_changes_nothing(tiny_model_dir):
    """run_model decodes only the separation chunks and the embedded sources of a ToTaToNet; the
    outputs equal those of the same model run whole (through forward only)."""
    from core.embeddings import get_encoder
    from core.models import load_model
    from core.pipeline.windows import run_model

    net = load_model(tiny_model_dir)

    class Whole(torch.nn.Module):  # the same network, without analyse / decode
        frame_step, frame_size, config = net.frame_step, net.frame_size, net.config

        def forward(self, x):
            return net(x)

    params = PipelineParams(embedding="mfcc", step=0.5, threshold=0.3, min_embedding_duration=4.0, batch_size=5)
    audio = tone_bursts(12.0)
    encoder = get_encoder("mfcc")
    split, whole = (run_model(m, audio, params, encoder=encoder, source_embeddings="all") for m in (net, Whole()))
    assert np.array_equal(split.activations, whole.activations)
    assert np.allclose(split.sep_sources.astype(np.float32), whole.sep_sources.astype(np.float32), atol=1e-3)
    assert np.allclose(split.sep_scales, whole.sep_scales, rtol=1e-5)
    assert len(split.src_vectors) > 0 and np.allclose(split.src_vectors, whole.src_vectors, atol=1e-5)
    # recomputed when not cached (long recordings): the same decoding, equal to the whole forward and the cache
    split_r, whole_r = (run_model(m, audio, params, cache_sources=False) for m in (net, Whole()))
    at = split.starts[split.sep_chunks]
    again = split_r.recompute_sources(at)
    assert again.shape == split.sep_sources.shape
    assert np.allclose(again, whole_r.recompute_sources(at), atol=1e-5)
    cached = split.sep_sources.astype(np.float32) * split.sep_scales[..., None]
    assert np.all(np.abs(again - cached) <= 2e-3 * split.sep_scales[..., None] + 1e-6)
