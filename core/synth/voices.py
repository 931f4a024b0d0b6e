"""Talkers of synthetic meetings: pseudo-speakers drawn from the base voices of several engines.

Why: a model trained on a handful of voices learns those voices. Each base voice (core.synth.engines)
becomes several pseudo-speakers: a vocal-tract warp (formants scaled by 0.87-1.13, done by
resampling: the engine is asked for speech that is slower and, where it can, lower by the same
factor, so that only the formants move), a pitch shift (+-3 semitones where the engine has pitch
control) and a tempo factor (0.85-1.15). Two pseudo-speakers of one meeting never share both the
person and a warp band (nor neighbouring bands: one person gives at most three pseudo-speakers
of a meeting, at least 13 % apart), so they always sound different.

Voice sets keep an honest test apart: "heldout" is the Piper engine (a whole synthesiser) and the
person slt (flite's and festival's renderings of that ARCTIC speaker); "train" is everything else;
"all" is both.

Every utterance is cached as 16 kHz FLAC per (engine build, pseudo-speaker, text) under
~/.cache/pixit-synth ($PIXIT_SYNTH_CACHE): the cache changes only speed, never the audio (except
Piper, which samples its own noise: there the cache is what makes a corpus repeatable).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.errors import PixitError
from core.synth.activity import SAMPLE_RATE, trim
from core.synth.engines import BaseVoice, engines
from core.synth.engines.espeak import available_voice_parts

ENGLISH_PROBABILITY = 0.6  # espeak: share of English accents (the rest speak pseudo-words)
REAL_VOICE_PROBABILITY = 0.03  # a meeting slot goes to a speaker of assets/real
WARP_BANDS = (0.87, 0.935, 1.0, 1.065, 1.13)  # vocal-tract factor bands (+-1.5 % jitter inside a band)
PITCH_RANGE = 3.0  # semitones, engines with pitch control
ESPEAK_PITCH_RANGE = 4.0  # espeak's own pitch setting, 22-78 of 0-99
TEMPO_RANGE = (0.85, 1.15)
HELDOUT_ENGINES = ("piper",)
HELDOUT_PERSONS = ("slt",)
VOICE_SETS = ("all", "train", "heldout")


@dataclass(frozen=True)
class Voice:
    """One pseudo-speaker: a base voice of an engine (espeak: with a language), pitch shift in
    semitones, tempo factor and vocal-tract warp."""

    engine: str
    ident: str  # the engine's voice; espeak: "language+variant"
    person: str  # who the base voice is (see BaseVoice.person)
    english: bool = True
    pitch: float = 0.0
    tempo: float = 1.0
    warp: float = 1.0
    pitch_control: bool = False

    @property
    def name(self) -> str:
        if self.engine == "real":
            return f"real:{self.ident}"
        return f"{self.engine}:{self.ident} p{self.pitch:+.1f} t{self.tempo:.2f} w{self.warp:.3f}"

    @property
    def real(self) -> bool:
        return self.engine == "real"


def default_cache_dir() -> Path:
    """$PIXIT_SYNTH_CACHE, else $XDG_CACHE_HOME/pixit-synth, else ~/.cache/pixit-synth."""
    env = os.environ.get("PIXIT_SYNTH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pixit-synth"


def parse_engines(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """"espeak,flite" -> ("espeak", "flite"); "auto" = every installed engine but "real"."""
    known = engines()
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if names == ["auto"]:
        return tuple(n for n, e in known.items() if n != "real" and e.available())
    unknown = [n for n in names if n not in known or n == "real"]
    if unknown or not names:
        choices = ", ".join(n for n in known if n != "real")
        raise PixitError(f"--engines: unknown engine {unknown[0] if unknown else text!r} (choose from {choices}, or auto)")
    return tuple(dict.fromkeys(names))


def base_voices(engine_names: tuple[str, ...], voice_set: str = "all") -> dict[str, tuple[BaseVoice, ...]]:
    """The installed base voices of each engine in `engine_names` that belong to `voice_set`."""
    if voice_set not in VOICE_SETS:
        raise PixitError(f"--voice-set must be one of {', '.join(VOICE_SETS)}, got {voice_set!r}")
    found = {}
    for name in engine_names:
        voices = engines()[name].voices()
        if voice_set != "all":
            held = lambda v: v.engine in HELDOUT_ENGINES or v.person in HELDOUT_PERSONS  # noqa: E731
            voices = tuple(v for v in voices if held(v) == (voice_set == "heldout"))
        if voices:
            found[name] = voices
    return found


def max_speakers(engine_names: tuple[str, ...], voice_set: str = "all") -> int:
    """How many distinct pseudo-speakers one meeting can always have: two per person (bands two
    apart: whichever band a person's first pseudo-speaker takes, another one stays free)."""
    persons = {v.person for voices in base_voices(engine_names, voice_set).values() for v in voices}
    return 2 * len(persons)


def require_voices(engine_names: tuple[str, ...], voice_set: str, n: int) -> dict[str, tuple[BaseVoice, ...]]:
    """The base voices of `engine_names` in `voice_set`; a one-line PixitError when there are none or
    fewer than `n` speakers' worth."""
    pools = base_voices(engine_names, voice_set)
    if not pools:
        raise PixitError(f"--engines: none of {','.join(engine_names)} is installed with voices of the {voice_set!r} set")
    limit = max_speakers(engine_names, voice_set)
    if n > limit:
        hint = ""
        if "piper" not in pools:
            hint = (" (more voices: --engines with piper, which comes with the synth extra: pip install -e '.[synth]')"
                    if "piper" not in engine_names else " (piper is not installed: pip install -e '.[synth]')")
        raise PixitError(f"--speakers: at most {limit} distinct voices are available with {','.join(engine_names)} "
                         f"({voice_set} voices), got {n}{hint}")
    return pools


def pick_voices(rng: np.random.Generator, n: int, real: bool = True, engine_names: tuple[str, ...] = ("espeak",),
                voice_set: str = "all") -> list[Voice]:
    """`n` distinct pseudo-speakers for one meeting: each slot draws an engine (uniformly among
    those with voices), a base voice, a warp band not yet taken by that person, a pitch and a
    tempo; with `real`, a slot is now and then given to a speaker of a shipped real recording."""
    pools = require_voices(engine_names, voice_set, n)
    names = sorted(pools)
    taken: set[tuple[str, int]] = set()  # (person, band) and its neighbours
    voices: list[Voice] = []
    while len(voices) < n:
        engine = names[int(rng.integers(len(names)))]
        base = pools[engine][int(rng.integers(len(pools[engine])))]
        free = [b for b in range(len(WARP_BANDS)) if (base.person, b) not in taken]
        if not free:
            persons = {v.person for p in pools.values() for v in p}
            if all((p, b) in taken for p in persons for b in range(len(WARP_BANDS))):
                raise PixitError(f"cannot draw {n} distinct speakers from engines {','.join(engine_names)}")
            continue
        band = free[int(rng.integers(len(free)))]
        taken.update((base.person, b) for b in (band - 1, band, band + 1))
        warp = WARP_BANDS[band] * float(rng.uniform(0.985, 1.015))
        tempo = float(rng.uniform(*TEMPO_RANGE))
        ident, english, pitch_range = base.ident, base.english, PITCH_RANGE
        if engine == "espeak":
            languages, _ = available_voice_parts()
            english_langs = [lang for lang in languages if lang.startswith("en")]
            other = [lang for lang in languages if not lang.startswith("en")]
            pool = english_langs if (english_langs and (not other or rng.random() < ENGLISH_PROBABILITY)) else other
            language = str(pool[int(rng.integers(len(pool)))])
            ident, english, pitch_range = f"{language}+{base.ident}", language.startswith("en"), ESPEAK_PITCH_RANGE
        pitch = float(rng.uniform(-pitch_range, pitch_range)) if base.pitch_control else 0.0
        voices.append(Voice(engine, ident, base.person, english, round(pitch, 2), round(tempo, 3), round(warp, 4),
                            base.pitch_control))
    # the same random numbers are drawn whether or not real recordings are available
    draws = [(rng.random(), int(rng.integers(1 << 30))) for _ in range(n)]
    real_engine = engines()["real"]
    unused = [v.ident for v in real_engine.voices()] if real else []
    for k, (u, pick) in enumerate(draws):
        if unused and u < REAL_VOICE_PROBABILITY:
            ident = unused.pop(pick % len(unused))
            voices[k] = Voice("real", ident, f"real:{ident}")
    return voices


def _resample(waveform: np.ndarray, rate: float) -> np.ndarray:
    """`waveform` taken as sampled at `rate` Hz, resampled to 16 kHz (polyphase)."""
    from scipy.signal import resample_poly

    ratio = Fraction(SAMPLE_RATE / rate).limit_denominator(400)
    if ratio == 1:
        return waveform.astype(np.float32)
    return resample_poly(waveform.astype(np.float64), ratio.numerator, ratio.denominator).astype(np.float32)


def synthesize(voice: Voice, text: str, cache_dir: Path | None = None) -> np.ndarray:
    """Dry utterance (float32, 16 kHz, 16-bit resolution) of `text` spoken by `voice`, trimmed to
    its speech; cached as 16-bit FLAC under `cache_dir` (None: no cache)."""
    import soundfile as sf

    engine = engines()[voice.engine]
    if voice.real:
        wav, _ = engine.render(voice.ident, text, 0.0, 1.0)
        return trim(wav)
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha1(f"{engine.version()}|{voice.name}|{text}".encode()).hexdigest()
        cache_file = Path(cache_dir) / key[:2] / f"{key}.flac"
        if cache_file.is_file():
            try:
                data, sr = sf.read(str(cache_file), dtype="int16")
                if sr == SAMPLE_RATE and data.ndim == 1:
                    return data.astype(np.float32) / 32768.0
            except Exception:  # a damaged cache entry is synthesised again
                pass
    # warping by resampling raises pitch and tempo with the formants: ask the engine for the inverse
    semitones = voice.pitch - 12 * np.log2(voice.warp) if voice.pitch_control else 0.0
    wav, sr = engine.render(voice.ident, text, float(semitones), voice.tempo / voice.warp)
    if wav.ndim > 1:
        wav = wav.mean(axis=1)
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    wav = _resample(wav / peak * 0.5 if peak > 0 else wav, sr * voice.warp)
    pcm = np.clip(np.round(trim(wav) * 32768.0), -32768, 32767).astype(np.int16)
    if cache_file is not None:
        _write_cache(cache_file, pcm)
    return pcm.astype(np.float32) / 32768.0


def _write_cache(cache_file: Path, pcm: np.ndarray) -> None:
    import soundfile as sf

    tmp = None
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp.flac")
        os.close(fd)
        sf.write(tmp, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        os.replace(tmp, cache_file)
    except OSError:
        pass  # an unwritable cache only costs speed
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
