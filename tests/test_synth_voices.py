"""Speech engines and pseudo-speakers (core/synth/engines, core/synth/voices).

Engines that are not installed are skipped (espeak-ng always is after .ci/setup; flite, festival and
Piper are what the default-model recipe installs)."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import PixitError
from core.synth import engines, voices
from core.synth.voices import Voice, base_voices, max_speakers, parse_engines, pick_voices, synthesize

SR = 16000
INSTALLED = [name for name, engine in engines().items() if name != "real" and engine.available()]


def _centroid(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / SR)
    return float((spectrum * freqs).sum() / spectrum.sum())


@pytest.mark.parametrize("name", ["espeak", "flite", "festival", "piper"])
def test_every_engine_speaks_through_the_cache(name, tmp_path):
    engine = engines()[name]
    if not engine.available():
        pytest.skip(f"{name} is not installed")
    base = engine.voices()[0]
    ident = f"en-us+{base.ident}" if name == "espeak" else base.ident
    voice = Voice(name, ident, base.person, pitch=1.0 if base.pitch_control else 0.0, tempo=1.1, warp=1.06,
                  pitch_control=base.pitch_control)
    wave = synthesize(voice, "We should check the budget before the meeting.", tmp_path)
    assert wave.dtype == np.float32 and np.isfinite(wave).all()
    assert 0.8 < len(wave) / SR < 8.0 and 0.01 < np.abs(wave).max() <= 1.0
    assert len(list(tmp_path.rglob("*.flac"))) == 1
    again = synthesize(voice, "We should check the budget before the meeting.", tmp_path)
    assert np.array_equal(wave, again)  # from the cache, bit for bit


def test_warp_moves_formants_not_tempo():
    """A vocal-tract warp of 1.13 vs 0.87 raises the spectral centroid clearly, while the engine's
    tempo compensation keeps the duration about the same."""
    text = "So we need to discuss the remote control design again tomorrow morning."
    low = synthesize(Voice("espeak", "en-us+m3", "espeak:m3", warp=0.87, pitch_control=True), text)
    high = synthesize(Voice("espeak", "en-us+m3", "espeak:m3", warp=1.13, pitch_control=True), text)
    assert _centroid(high) / _centroid(low) > 1.1
    assert abs(len(high) / len(low) - 1) < 0.15


def test_voice_sets_split_persons():
    names = parse_engines("auto")
    train = {v.person for vs in base_voices(names, "train").values() for v in vs}
    held = {v.person for vs in base_voices(names, "heldout").values() for v in vs}
    everything = {v.person for vs in base_voices(names, "all").values() for v in vs}
    assert not train & held and train | held == everything
    assert all(v.engine != "piper" for vs in base_voices(names, "train").values() for v in vs)


def test_pseudo_speakers_of_one_meeting_differ():
    names = tuple(INSTALLED)
    rng = np.random.default_rng(3)
    for _ in range(30):
        picked = pick_voices(rng, 4, real=False, engine_names=names, voice_set="train")
        by_person: dict[str, list[float]] = {}
        for v in picked:
            by_person.setdefault(v.person, []).append(v.warp)
            assert 0.85 < v.warp < 1.15 and 0.85 <= v.tempo <= 1.15
        for warps in by_person.values():
            warps.sort()
            assert all(b / a > 1.1 for a, b in zip(warps, warps[1:])), warps


def test_too_many_speakers_and_unknown_engines_are_errors():
    with pytest.raises(PixitError, match="--engines"):
        parse_engines("espeak,nope")
    with pytest.raises(PixitError, match="--engines"):
        parse_engines("real")
    limit = max_speakers(("espeak",), "all")
    with pytest.raises(PixitError, match="at most"):
        pick_voices(np.random.default_rng(0), limit + 1, engine_names=("espeak",))
    # too few voices without Piper: the error says where more come from
    with pytest.raises(PixitError, match=r"at most .*synth extra"):
        pick_voices(np.random.default_rng(0), limit + 1, engine_names=("espeak",))


def test_real_voices_stay_out_when_asked(monkeypatch):
    monkeypatch.setattr(voices, "REAL_VOICE_PROBABILITY", 1.0)
    rng = np.random.default_rng(0)
    assert not any(v.real for v in pick_voices(rng, 3, real=False))
    if engines()["real"].available():
        assert any(v.real for v in pick_voices(rng, 2, real=True))


def test_cli_natural_voices_varied_acoustics(tmp_path):
    """`pixit synth --engines auto --voice-set heldout --acoustics varied` through the real CLI."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    held = base_voices(parse_engines("auto"), "heldout")
    if not held:
        pytest.skip("no held-out voice installed (flite / festival / piper)")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PIXIT_SYNTH_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "core.cli", "synth", "--out", str(tmp_path / "c"), "--num-meetings", "1",
                           "--duration", "8", "--speakers", "2", "--engines", "auto", "--voice-set", "heldout",
                           "--acoustics", "varied", "--quiet"], capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "c" / "meta" / "meeting000.json").read_text())
    assert meta["voice_set"] == "heldout" and set(meta["engines"]) == set(parse_engines("auto"))
    for speaker in meta["speakers"].values():
        assert speaker["voice"]["engine"] in held
        assert speaker["voice"]["engine"] == "piper" or speaker["voice"]["person"] == "slt"
    stats = json.loads((tmp_path / "c" / "stats.json").read_text())
    assert stats["acoustics"]["rooms"] == "simulated"
