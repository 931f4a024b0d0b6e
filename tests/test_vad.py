"""Silero VAD (core/vad.py) and the optional pipeline stage that gives missed speech to the likeliest
speaker (core/pipeline/speech.py, `pixit separate --vad silero`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import vad
from core.pipeline.speech import apply_speech

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "assets" / "real"
needs_silero = pytest.mark.skipif(not vad.available(), reason="silero-vad is not installed")


def _reference_speech(num_frames: int, step: float) -> np.ndarray:
    from core.annotation import read_rttm_single

    mask = np.zeros(num_frames, dtype=bool)
    for seg in read_rttm_single(REAL / "sample.rttm").get_timeline().support():
        mask[int(seg.start / step):int(seg.end / step)] = True
    return mask


def test_apply_speech_fills_missed_frames_and_gates():
    binary = np.array([[1, 0], [0, 0], [0, 0], [0, 1], [1, 0]], dtype=bool)
    act = np.array([[.9, .1], [.3, .4], [.2, .1], [.1, .8], [.7, .2]], dtype=np.float32)
    speech = np.array([1, 1, 1, 1, 0], dtype=bool)
    filled = apply_speech(binary, act, speech)
    assert filled.tolist() == [[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]]
    assert apply_speech(binary, act, speech, gate=True)[4].tolist() == [0, 0]
    silent = np.zeros((3, 0), dtype=bool)  # no speaker at all: nothing to give the speech to
    assert apply_speech(silent, np.zeros((3, 0)), np.ones(3, bool)).shape == (3, 0)


@needs_silero
def test_silero_matches_the_real_recording_and_keeps_threads():
    from core.audio import load_audio

    torch.set_num_threads(2)
    wave = load_audio(REAL / "sample.wav")
    mask = vad.speech_mask(wave, len(wave) // 128, 128, 128)
    assert torch.get_num_threads() == 2  # importing silero_vad sets 1 thread: restored
    agreement = float(np.mean(mask == _reference_speech(len(mask), 128 / 16000)))
    assert agreement > 0.95, agreement
    assert not vad.speech_mask(np.zeros(16000 * 3, np.float32), 375, 128, 128).any()


@needs_silero
def test_vad_stage_reduces_missed_speech_on_the_real_recording(tmp_path):
    """The shipped model misses speech on the real sample; with --vad silero (the real CLI) less
    of it is missed, and the run records the stage in its parameters."""
    from core.annotation import read_rttm_single
    from core.metrics import diarization_error

    reference = read_rttm_single(REAL / "sample.rttm")
    results = {}
    for name, extra in (("plain", ["--vad", "none"]), ("vad", ["--vad", "silero"])):
        out = tmp_path / name
        proc = subprocess.run([sys.executable, "-m", "core.cli", "separate", str(REAL / "sample.wav"), "--out", str(out),
                               "--device", "cpu", "--no-sources", "--quiet", *extra],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stderr
        results[name] = diarization_error(reference, read_rttm_single(out / "sample.rttm"))
        summary = json.loads((out / "sample.json").read_text())
        assert summary["params"]["vad"] == extra[1]
    assert results["vad"]["missed_detection_rate"] < results["plain"]["missed_detection_rate"]
