"""Recording chain of synthetic meetings (core/synth/acoustics): rooms, noise kinds, channel, codecs,
and that the ground truth stays exact with all of them switched on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.synth import acoustics, espeak_available
from core.synth.acoustics import ACOUSTICS, CODECS, apply_codec, draw_room, noise_mix
from core.synth.activity import VAD_FRAME
from core.synth.meeting import make_meeting

SR = 16000
pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")


def _speech_like(seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (0.1 * envelope * (np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 720 * t)
                              + 0.1 * rng.standard_normal(len(t)))).astype(np.float64)


@pytest.mark.parametrize("codec", CODECS)
def test_codecs_keep_length_and_alignment(codec):
    x = _speech_like()
    y = apply_codec(x, codec)
    assert y.shape == x.shape and np.isfinite(y).all()
    snr = 10 * np.log10(np.sum(x ** 2) / np.sum((y - x) ** 2))
    assert snr > 5, (codec, snr)  # aligned: a delayed copy would give about 0 dB or less


@pytest.mark.parametrize("kind", ["coloured", "hum", "ventilation", "clicks"])
def test_noise_kinds_are_unit_rms(kind):
    cfg = replace(ACOUSTICS["varied"], noise_kinds=(kind,), max_noise_kinds=1)
    noise, kinds = noise_mix(np.random.default_rng(1), 3 * SR, cfg)
    assert kinds == [kind] and np.isfinite(noise).all()
    assert np.sqrt(np.mean(noise ** 2)) == pytest.approx(1.0, rel=1e-6)


def test_hum_sits_on_mains_harmonics():
    noise = acoustics.hum(np.random.default_rng(2), 4 * SR)
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / SR)
    near = np.zeros_like(freqs, dtype=bool)
    for base in (50, 60):
        for h in range(1, 6):
            near |= np.abs(freqs - base * h) < 3
    assert spectrum[near].sum() / spectrum.sum() > 0.95


def test_simulated_room_starts_at_the_direct_path():
    pytest.importorskip("pyroomacoustics")
    room = draw_room(np.random.default_rng(4), 3, replace(ACOUSTICS["varied"], dry_probability=0.0))
    assert room.meta["room"] == "simulated" and len(room.irs) == 3
    for h, d in zip(room.irs, room.meta["distance_m"]):
        assert h[0] == 1.0 and np.abs(h).max() == 1.0 and 0.3 < d < 5.0
        tail = np.sum(h[1:] ** 2)
        assert tail > 0.01  # there is reverberation
    assert np.all(room.gains_db <= 0) and np.all(room.gains_db >= -12)


def test_everything_on_ground_truth_stays_exact(tmp_path):
    """Telephone band, colouration and a codec on every meeting: mixture == sum(sources) + noise,
    and each source's energy still sits inside its RTTM turns."""
    cfg = replace(ACOUSTICS["varied"], telephone_probability=1.0, colouration_probability=1.0, codec_probability=1.0,
                  dry_probability=0.0)
    for seed in range(3):
        meeting = make_meeting("m", 15.0, 3, np.random.default_rng(seed), cache_dir=tmp_path, acoustics=cfg)
        assert meeting.meta["channel"]["telephone"] and meeting.meta["channel"]["codec"] in CODECS
        total = meeting.sources.astype(np.float64).sum(axis=0) + meeting.noise
        np.testing.assert_allclose(meeting.mixture, total, atol=1e-5)
        assert np.abs(meeting.mixture).max() <= 0.9 + 1e-6
        for label, source in zip(meeting.labels, meeting.sources):
            frames = source[: len(source) // VAD_FRAME * VAD_FRAME].reshape(-1, VAD_FRAME).astype(np.float64)
            energy = (frames ** 2).mean(axis=1)
            inside = np.zeros(len(energy), dtype=bool)
            for start, end in meeting.segments[label]:
                inside[int(start * SR / VAD_FRAME):int(end * SR / VAD_FRAME)] = True
            assert 10 * np.log10(energy[inside].mean() / max(energy[~inside].mean(), 1e-20)) > 6
        speech = meeting.sources.astype(np.float64).sum(axis=0)
        snr = 10 * np.log10(np.mean(speech ** 2) / np.mean(meeting.noise.astype(np.float64) ** 2))
        assert 0 < snr < 35, snr
