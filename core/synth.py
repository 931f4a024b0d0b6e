"""Synthetic meetings with ground truth: per-speaker sources, mixture, noise, RTTM, UEM, manifest.

Why: tests, demos and the default model need multi-speaker recordings whose separated sources and
speaker turns are known exactly. Speech comes from Debian's `espeak-ng` (many languages x voice
variants x pitch x speed), plus now and then a speaker of the real recordings in assets/real.
Every utterance is cached (16 kHz FLAC) per (espeak version, voice, text) in ~/.cache/pixit-synth
($PIXIT_SYNTH_CACHE), so repeated runs are fast; the cache never changes the audio.

A meeting is a conversation: one speaker holds the floor for a turn of 1-4 sentences, others
answer with short backchannels ("yeah", "mm-hmm") during long turns, turns follow each other with
short gaps or start before the previous one ended (interruptions), so that about 20 % of the speech
time is overlapped, as in AMI. Each speaker gets its own level (+-6 dB) and its own room impulse
response (same room, i.e. same RT60, for all speakers of a meeting; direct path kept), and
low-level coloured noise is added at 15-30 dB SNR.

Layout written by `make_corpus(out_dir, ...)`:

    out_dir/manifest.csv             audio,rttm,uem,sources (paths relative to out_dir)
    out_dir/<uri>.wav                the mixture  == sum(sources/<uri>/*.wav) + noise/<uri>.wav
    out_dir/<uri>.rttm / <uri>.uem   speaker turns (from the dry speech activity) / whole recording
    out_dir/sources/<uri>/<label>.wav  reverberant image of each speaker (labels spk0, spk1, ...)
    out_dir/noise/<uri>.wav          the background noise (kept out of sources/ on purpose)
    out_dir/meta/<uri>.json          voices, gains, RT60, SNR, overlap statistics of the meeting
    out_dir/stats.json               corpus statistics (speech / overlap ratio)

The RTTM comes from an energy VAD (10 ms frames, -40 dB re. the loudest frame, gaps < 0.1 s
merged) on each dry utterance, so it marks exactly where each source speaks (reverberation tails
run on past a segment end, as they do in real recordings annotated from the close-talk speech).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from core.errors import Cancelled, PixitError
from core.fileio import atomic_write_json, atomic_write_text

ProgressFn = Callable[[float, str], None]
SAMPLE_RATE = 16_000  # == core.audio.SAMPLE_RATE (core.audio, i.e. scipy, is imported when needed)

# ----------------------------------------------------------------------------------------------
# voices

# Latin-script languages (our pseudo-sentences are written in Latin letters) and English accents.
ENGLISH_LANGUAGES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                     "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
OTHER_LANGUAGES = ("af", "az", "ca", "cs", "cy", "da", "de", "eo", "es", "es-419", "et", "eu", "fi",
                   "fr-fr", "fr-be", "ga", "haw", "hr", "ht", "hu", "ia", "id", "io", "is", "it",
                   "la", "lfn", "lt", "lv", "mi", "ms", "mt", "nb", "nl", "pl", "pt", "pt-br", "ro",
                   "sk", "sl", "sq", "sv", "sw", "tn", "tr", "vi")
# Variants that do not sound like a person (robots, effects, whisper, test voices).
_EXCLUDED_VARIANTS = {"demonic", "announcer", "unirobot", "anikarobot", "fast", "whisper",
                      "whisperf", "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5",
                      "robosoft6", "robosoft7", "robosoft8", "croak"}
PITCHES = (20, 30, 40, 50, 60, 70, 80)
SPEEDS = (135, 150, 165, 180)
ENGLISH_PROBABILITY = 0.6
# Real recordings shipped with the project (assets/real/<name>.wav + <name>.rttm): each speaker's
# solo regions become a "real" voice, picked for a meeting slot with this probability.
REAL_DIR = Path(__file__).resolve().parents[1] / "assets" / "real"
REAL_VOICE_PROBABILITY = 0.03


@dataclass(frozen=True)
class Voice:
    """One synthetic talker: espeak-ng language + variant, pitch (0-99) and speed (words/min)."""

    language: str
    variant: str
    pitch: int
    speed: int

    @property
    def name(self) -> str:
        if self.language == "real":
            return f"real:{self.variant}"
        return f"{self.language}+{self.variant} p{self.pitch} s{self.speed}"

    @property
    def english(self) -> bool:
        return self.language.startswith("en")

    @property
    def real(self) -> bool:
        return self.language == "real"

    def espeak_args(self) -> list[str]:
        return ["-v", f"{self.language}+{self.variant}", "-p", str(self.pitch), "-s", str(self.speed)]


def espeak_available() -> bool:
    """True when the `espeak-ng` program can be run."""
    return shutil.which("espeak-ng") is not None


def _require_espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise PixitError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    return path


@lru_cache(maxsize=1)
def _espeak_version() -> str:
    out = subprocess.run([_require_espeak(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


@lru_cache(maxsize=1)
def available_voice_parts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(languages, variants) offered by the installed espeak-ng, restricted to speech-like ones."""
    exe = _require_espeak()
    langs = subprocess.run([exe, "--voices"], capture_output=True, text=True, check=False).stdout
    installed = {line.split()[1].lower() for line in langs.splitlines()[1:] if len(line.split()) > 1}
    languages = tuple(lang for lang in ENGLISH_LANGUAGES + OTHER_LANGUAGES if lang in installed)
    var = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, check=False).stdout
    variants = []
    for line in var.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            ident = fields[4][3:]
            if ident.lower() not in _EXCLUDED_VARIANTS and ident not in variants:
                variants.append(ident)
    if not languages or not variants:
        raise PixitError("espeak-ng offers no usable voices (is espeak-ng-data installed?)")
    return languages, tuple(sorted(variants))


def count_voices() -> dict[str, int]:
    """How many distinct voices the machine offers (languages x variants x pitches x speeds)."""
    languages, variants = available_voice_parts()
    return {"languages": len(languages), "variants": len(variants),
            "language_variant_pairs": len(languages) * len(variants),
            "voices": len(languages) * len(variants) * len(PITCHES) * len(SPEEDS)}


def pick_voices(rng: np.random.Generator, n: int, real: bool = True) -> list[Voice]:
    """`n` distinct voices for one meeting (distinct variants, so the timbres differ); with
    `real`, a slot is now and then given to a speaker of a shipped real recording instead."""
    languages, variants = available_voice_parts()
    if n > len(variants):
        raise PixitError(f"at most {len(variants)} speakers per meeting (distinct espeak-ng voices)")
    english = [lang for lang in languages if lang.startswith("en")]
    other = [lang for lang in languages if not lang.startswith("en")]
    chosen = rng.choice(len(variants), size=n, replace=False)
    voices = []
    for index in chosen:
        pool = english if (english and (not other or rng.random() < ENGLISH_PROBABILITY)) else other
        voices.append(Voice(language=str(pool[rng.integers(len(pool))]), variant=variants[int(index)],
                            pitch=int(rng.choice(PITCHES)), speed=int(rng.choice(SPEEDS))))
    # the same random numbers are drawn whether or not real recordings are available
    draws = [(rng.random(), int(rng.integers(1 << 30))) for _ in range(n)]
    unused = sorted(real_voice_clips()) if real else []
    for k, (u, pick) in enumerate(draws):
        if unused and u < REAL_VOICE_PROBABILITY:
            voices[k] = Voice(language="real", variant=unused.pop(pick % len(unused)), pitch=0, speed=0)
    return voices


@lru_cache(maxsize=1)
def real_voice_clips() -> dict[str, tuple[np.ndarray, ...]]:
    """Solo speech of each speaker of the real recordings in assets/real (name.wav + name.rttm):
    regions where only that speaker is annotated, 50 ms inside the annotation, >= 0.4 s."""
    from core.annotation import read_rttm_single
    from core.audio import load_audio

    clips: dict[str, tuple[np.ndarray, ...]] = {}
    if not REAL_DIR.is_dir():
        return clips
    fade = np.linspace(0.0, 1.0, 160, dtype=np.float32)
    for wav in sorted(REAL_DIR.glob("*.wav")):
        rttm = wav.with_suffix(".rttm")
        if not rttm.is_file():
            continue
        try:
            audio = load_audio(wav)
            annotation = read_rttm_single(rttm)
        except PixitError:
            continue
        for label in sorted(annotation.labels()):
            others = [annotation.label_timeline(other) for other in annotation.labels() if other != label]
            solo = annotation.label_timeline(label).support()
            for other in others:
                solo = solo.extrude(other.support())
            pieces = []
            for seg in solo.support():
                start, end = int((seg.start + 0.05) * SAMPLE_RATE), int((seg.end - 0.05) * SAMPLE_RATE)
                if end - start >= int(0.4 * SAMPLE_RATE):
                    clip = audio[start:end].copy()
                    clip[:160] *= fade
                    clip[-160:] *= fade[::-1]
                    pieces.append(clip)
            if pieces:
                clips[f"{wav.stem}:{label}"] = tuple(pieces)
    return clips


# ----------------------------------------------------------------------------------------------
# text

_NOUNS = ("project budget meeting report design team customer market product plan idea remote "
          "button screen battery price deadline schedule version feature problem question answer "
          "result data model system server network office window table coffee morning weekend "
          "manager student teacher doctor city river garden kitchen picture letter phone camera "
          "story number message document slide chart month year minute hour option decision "
          "proposal strategy colour shape material prototype user interface company partner").split()
_ADJECTIVES = ("new old big small good bad quick slow simple strange important different easy "
               "hard cheap expensive early late final next last whole main special useful clear "
               "blue red green yellow round soft modern classic local global").split()
_VERBS = ("need want like think see know make take find give tell show build change check move "
          "start finish send read write test use buy sell keep try discuss explain compare "
          "prepare review improve").split()
_PERSONS = "I we you they he she".split()
_DETS = "the a this that our their my your every some".split()
_PREPS = "in on for with about after before during from into".split()
_ADVERBS = "really probably maybe actually already still just again also quite".split()
_OPENERS = ("so", "well", "okay", "um", "uh", "right", "and", "but", "actually", "you know", "I mean")
_QUESTION_WORDS = ("what", "why", "how", "when", "where", "who")
BACKCHANNELS = ("yeah", "mm-hmm", "right", "okay", "uh-huh", "yes", "sure", "exactly", "I see",
                "true", "oh really", "no", "hmm", "good", "of course", "yeah yeah")
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["an", "el", "or", "is", "um"]


def _choice(rng: np.random.Generator, items: tuple | list) -> str:
    return items[int(rng.integers(len(items)))]


def _english_sentence(rng: np.random.Generator) -> str:
    c = lambda items: _choice(rng, items)  # noqa: E731
    np_ = lambda: f"{c(_DETS)} {c(_ADJECTIVES) + ' ' if rng.random() < 0.5 else ''}{c(_NOUNS)}"  # noqa: E731
    kind = rng.integers(6)
    if kind == 0:
        s = f"{c(_PERSONS)} {c(_ADVERBS)} {c(_VERBS)} {np_()} {c(_PREPS)} {np_()}"
    elif kind == 1:
        s = f"{np_()} is {c(_ADVERBS)} {c(_ADJECTIVES)}, {c(_OPENERS)} {c(_PERSONS)} {c(_VERBS)} it"
    elif kind == 2:
        s = f"{c(_QUESTION_WORDS)} do {c(_PERSONS)} {c(_VERBS)} {np_()} {c(_PREPS)} {np_()}?"
    elif kind == 3:
        s = f"{c(_PERSONS)} {c(_VERBS)} {np_()}, and {c(_PERSONS)} {c(_VERBS)} {np_()}"
    elif kind == 4:
        s = f"{c(_OPENERS)}, {c(_PERSONS)} {c(_ADVERBS)} {c(_VERBS)} {np_()}"
    else:
        s = f"can {c(_PERSONS)} {c(_VERBS)} {np_()} {c(_PREPS)} {np_()} {c(_PREPS)} {np_()}?"
    return s[0].upper() + s[1:] + ("" if s.endswith("?") else ".")


def _pseudo_sentence(rng: np.random.Generator) -> str:
    words = []
    for _ in range(int(rng.integers(3, 11))):
        word = "".join(_choice(rng, _SYLLABLES) for _ in range(int(rng.integers(1, 4))))
        words.append(word)
        if rng.random() < 0.08:
            words[-1] += ","
    s = " ".join(words).rstrip(",")
    return s[0].upper() + s[1:] + ("?" if rng.random() < 0.15 else ".")


@lru_cache(maxsize=1)
def sentence_pools(size: int = 3000) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(English pseudo-sentences, language-neutral pseudo-word sentences), fixed across runs so
    that the utterance cache is reused by every corpus."""
    rng = np.random.default_rng(20240917)
    english = tuple(dict.fromkeys(_english_sentence(rng) for _ in range(size)))
    pseudo = tuple(dict.fromkeys(_pseudo_sentence(rng) for _ in range(size)))
    return english, pseudo


# ----------------------------------------------------------------------------------------------
# synthesis, cache, activity

VAD_FRAME = 160  # 10 ms at 16 kHz
VAD_THRESHOLD_DB = -40.0  # relative to the loudest frame
MIN_GAP = 0.1  # gaps shorter than this (s) are merged into one speech segment
MIN_SEGMENT = 0.03


def default_cache_dir() -> Path:
    """$PIXIT_SYNTH_CACHE, else $XDG_CACHE_HOME/pixit-synth, else ~/.cache/pixit-synth."""
    env = os.environ.get("PIXIT_SYNTH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pixit-synth"


def synthesize(voice: Voice, text: str, cache_dir: Path | None = None) -> np.ndarray:
    """Dry utterance (float32, 16 kHz, 16-bit resolution) of `text` spoken by `voice`, trimmed to
    its speech.

    Cached as 16 kHz 16-bit FLAC per (espeak version, voice, text) under `cache_dir` (None: no
    cache); a cached and a fresh utterance are bit-identical, so the cache only changes speed.
    """
    import soundfile as sf

    if voice.real:  # text is "clip:<index>" into that speaker's solo clips
        pieces = real_voice_clips().get(voice.variant, ())
        if not pieces:
            raise PixitError(f"no real recording for voice {voice.name}")
        return _trim(pieces[int(text.split(":")[1]) % len(pieces)])
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha1(f"{_espeak_version()}|{voice.name}|{text}".encode()).hexdigest()
        cache_file = Path(cache_dir) / key[:2] / f"{key}.flac"
        if cache_file.is_file():
            try:
                data, sr = sf.read(str(cache_file), dtype="int16")
                if sr == SAMPLE_RATE and data.ndim == 1:
                    return data.astype(np.float32) / 32768.0
            except Exception:  # a damaged cache entry is synthesised again
                pass
    from core.audio import prepare_waveform

    proc = subprocess.run([_require_espeak(), *voice.espeak_args(), "--stdout"], input=text.encode(),
                          capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise PixitError(f"espeak-ng failed for voice {voice.name}: {reason[0] if reason else 'no audio'}")
    data, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    waveform = _trim(prepare_waveform(data, sr, SAMPLE_RATE, name=voice.name))
    pcm = np.clip(np.round(waveform * 32768.0), -32768, 32767).astype(np.int16)
    if cache_file is not None:
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
    return pcm.astype(np.float32) / 32768.0


def _trim(waveform: np.ndarray, margin: int = 320) -> np.ndarray:
    active = frame_activity(waveform)
    if not active.any():
        return waveform[:0]
    idx = np.flatnonzero(active)
    start = max(0, idx[0] * VAD_FRAME - margin)
    end = min(len(waveform), (idx[-1] + 1) * VAD_FRAME + margin)
    return np.ascontiguousarray(waveform[start:end])


def frame_activity(waveform: np.ndarray, threshold_db: float = VAD_THRESHOLD_DB,
                   reference: float | None = None) -> np.ndarray:
    """Energy VAD: one boolean per 10 ms frame, True where the frame energy is within
    `threshold_db` of `reference` (default: the loudest frame) and above digital silence."""
    n = len(waveform) // VAD_FRAME
    tail = len(waveform) - n * VAD_FRAME
    frames = waveform[: n * VAD_FRAME].reshape(n, VAD_FRAME).astype(np.float64)
    energy = (frames ** 2).mean(axis=1)
    if tail:
        energy = np.append(energy, (waveform[n * VAD_FRAME:].astype(np.float64) ** 2).mean())
    if energy.size == 0:
        return np.zeros(0, dtype=bool)
    ref = float(energy.max()) if reference is None else reference
    return (energy > ref * 10 ** (threshold_db / 10)) & (energy > 1e-10)


def activity_segments(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE,
                      min_gap: float = MIN_GAP, reference: float | None = None) -> list[tuple[float, float]]:
    """Speech segments (start, end) in seconds of a waveform: energy VAD on 10 ms frames, gaps
    shorter than `min_gap` merged, blips shorter than 30 ms dropped."""
    active = frame_activity(waveform, reference=reference)
    step = VAD_FRAME / sample_rate
    segments: list[tuple[float, float]] = []
    if not active.any():
        return segments
    padded = np.concatenate([[False], active, [False]]).astype(np.int8)
    starts = np.flatnonzero(np.diff(padded) == 1)
    ends = np.flatnonzero(np.diff(padded) == -1)
    total = len(waveform) / sample_rate
    for s, e in zip(starts, ends):
        seg = (s * step, min(e * step, total))
        if segments and seg[0] - segments[-1][1] < min_gap:
            segments[-1] = (segments[-1][0], seg[1])
        else:
            segments.append(seg)
    return [seg for seg in segments if seg[1] - seg[0] >= MIN_SEGMENT]


def merge_segments(segments: Iterable[tuple[float, float]], min_gap: float = MIN_GAP) -> list[tuple[float, float]]:
    """Sort and merge segments closer than `min_gap`."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(segments):
        if merged and start - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


# ----------------------------------------------------------------------------------------------
# conversation

@dataclass
class ConversationConfig:
    """Turn-taking statistics; the defaults give about 20 % overlapped speech (AMI-like)."""

    turn_sentences_mean: float = 1.2       # extra sentences per turn (Poisson), +1
    intra_turn_pause: tuple[float, float] = (0.1, 0.5)
    gap_median: float = 0.35               # log-normal gap between turns (s)
    gap_sigma: float = 0.6
    overlap_turn_probability: float = 0.5  # next turn starts before the current one ends
    overlap_max: float = 1.5               # s of overlap at an overlapping turn change
    backchannel_rate: float = 0.16         # backchannels per second of turn, per listener (3 speakers)
    backchannel_max_per_turn: int = 3
    dominance_concentration: float = 2.0   # Dirichlet: lower = more unequal participation
    level_range_db: float = 6.0            # per-speaker level: +- this
    utterance_level_db: float = 1.5        # per-utterance level jitter: +- this
    rt60: tuple[float, float] = (0.2, 0.6)
    drr_db: tuple[float, float] = (0.0, 10.0)  # direct-to-reverberant ratio
    snr_db: tuple[float, float] = (15.0, 30.0)
    speech_rms: float = 0.05               # reference speech level (about -26 dBFS)


@dataclass
class _Placed:
    speaker: int
    start: int  # sample
    waveform: np.ndarray
    text: str
    backchannel: bool


def _plan_conversation(rng: np.random.Generator, voices: list[Voice], duration: float,
                       cfg: ConversationConfig, cache_dir: Path | None) -> list[_Placed]:
    english, pseudo = sentence_pools()
    n = len(voices)
    sr = SAMPLE_RATE
    total = int(round(duration * sr))
    weights = rng.dirichlet([cfg.dominance_concentration] * n)
    busy = np.zeros(n)  # per speaker: time (s) when its last utterance ends
    placed: list[_Placed] = []

    def utter(speaker: int, text: str, start: float, backchannel: bool) -> float:
        wav = synthesize(voices[speaker], text, cache_dir)
        if wav.size == 0:
            return start
        begin = int(round(start * sr))
        if begin >= total:
            return start
        wav = wav[: total - begin]
        level = 10 ** (rng.uniform(-cfg.utterance_level_db, cfg.utterance_level_db) / 20)
        mask = np.repeat(frame_activity(wav), VAD_FRAME)[: len(wav)]  # level of the speech only
        rms = float(np.sqrt(np.mean(wav[mask] ** 2))) if mask.any() else 1.0
        wav = (wav * (level / max(rms, 1e-6))).astype(np.float32)
        placed.append(_Placed(speaker, begin, wav, text, backchannel))
        end = start + len(wav) / sr
        busy[speaker] = max(busy[speaker], end)
        return end

    def sentence(speaker: int) -> str:
        if voices[speaker].real:
            return f"clip:{int(rng.integers(1 << 30))}"
        pool = english if voices[speaker].english else pseudo
        return pool[int(rng.integers(len(pool)))]

    def backchannel(speaker: int) -> str | None:
        if voices[speaker].real:  # a short clip of that speaker, if it has one
            pieces = real_voice_clips().get(voices[speaker].variant, ())
            short = [i for i, clip in enumerate(pieces) if len(clip) <= 1.2 * sr]
            return f"clip:{short[int(rng.integers(len(short)))]}" if short else None
        return _choice(rng, BACKCHANNELS)

    t = rng.uniform(0.2, 1.0)
    current = int(rng.choice(n, p=weights))
    while t < duration - 0.5:
        t = max(t, busy[current] + 0.1)
        turn_start = last_start = turn_end = t
        for _ in range(1 + int(rng.poisson(cfg.turn_sentences_mean))):
            if t >= duration - 0.3:
                break
            last_start = t
            turn_end = utter(current, sentence(current), t, False)
            t = turn_end + rng.uniform(*cfg.intra_turn_pause)
        if turn_end <= turn_start:  # nobody can speak any more before the end
            break
        # listeners' backchannels during the turn
        length = turn_end - turn_start
        if n > 1 and length > 1.0:
            for other in range(n):
                if other == current:
                    continue
                rate = cfg.backchannel_rate * np.sqrt(2.0 / (n - 1))  # fewer listeners, each more active
                count = min(int(rng.poisson(rate * length)), cfg.backchannel_max_per_turn)
                for when in np.sort(rng.uniform(turn_start + 0.5, turn_end - 0.2, size=count)):
                    text = backchannel(other)
                    if text is not None and when >= busy[other] + 0.2:
                        utter(other, text, float(when), True)
        if n == 1:
            t = turn_end + float(np.exp(np.log(cfg.gap_median) + cfg.gap_sigma * rng.standard_normal()))
            continue
        # next speaker, never the same one twice in a row
        p = weights.copy()
        p[current] = 0.0
        nxt = int(rng.choice(n, p=p / p.sum()))
        if rng.random() < cfg.overlap_turn_probability:
            overlap = rng.uniform(0.2, min(cfg.overlap_max, max(0.3, 0.6 * (turn_end - last_start))))
            t = turn_end - overlap
        else:
            t = turn_end + min(3.0, float(np.exp(np.log(cfg.gap_median) + cfg.gap_sigma * rng.standard_normal())))
        t = max(t, busy[nxt] + 0.1)
        current = nxt
    return placed


# ----------------------------------------------------------------------------------------------
# room, noise


def room_impulse_response(rng: np.random.Generator, rt60: float, drr_db: float,
                          sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Direct path (1 at t=0) + exponentially decaying, slightly low-passed noise tail whose
    energy is `drr_db` below the direct path; decays by 60 dB in `rt60` seconds."""
    from scipy.signal import lfilter

    length = int(rt60 * sample_rate)
    delay = int(rng.uniform(0.002, 0.008) * sample_rate)  # first reflection after the direct path
    t = np.arange(length - delay) / sample_rate
    tail = rng.standard_normal(length - delay) * np.exp(-6.9078 * t / rt60)
    tail = lfilter([0.6], [1.0, -0.4], tail)  # mild absorption of high frequencies
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail ** 2)), 1e-12))
    h = np.zeros(length)
    h[0] = 1.0
    h[delay:] = tail
    return h


NOISE_BLOCK = 1 << 18  # 16.4 s: long noise is shaped block by block (bounded memory)


def coloured_noise(rng: np.random.Generator, num_samples: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with a 1/f^exponent power spectrum (0 white, 1 pink, 2 brown) above 20 Hz.

    Shaped in the frequency domain, in independent blocks cross-faded with sqrt-Hann windows
    (so the variance stays constant) when the signal is longer than one block."""

    def shaped(n: int) -> np.ndarray:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
        block = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=n)
        block -= block.mean()
        return block / max(float(np.sqrt(np.mean(block ** 2))), 1e-12)

    if num_samples <= NOISE_BLOCK:
        return shaped(max(num_samples, 2))[:num_samples]
    hop = NOISE_BLOCK // 2
    window = np.sqrt(np.hanning(NOISE_BLOCK + 1)[:-1])  # periodic: w^2 overlap-adds to 1
    noise = np.zeros(num_samples + NOISE_BLOCK)
    for start in range(-hop, num_samples, hop):
        lo = max(start, 0)
        noise[lo:start + NOISE_BLOCK] += (shaped(NOISE_BLOCK) * window)[lo - start:]
    noise = noise[:num_samples]
    return noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)


# ----------------------------------------------------------------------------------------------
# meetings and corpora


@dataclass
class Meeting:
    """One synthetic meeting in memory. sources: (speakers, samples) float32 reverberant images."""

    uri: str
    labels: list[str]
    sources: np.ndarray
    noise: np.ndarray
    mixture: np.ndarray
    segments: dict[str, list[tuple[float, float]]]
    meta: dict

    @property
    def duration(self) -> float:
        return self.mixture.shape[0] / SAMPLE_RATE

    def annotation(self):
        """pyannote Annotation of the speaker turns."""
        from pyannote.core import Annotation, Segment

        annotation = Annotation(uri=self.uri)
        for label, segs in self.segments.items():
            for start, end in segs:
                annotation[Segment(start, end), annotation.new_track(Segment(start, end))] = label
        return annotation


def make_meeting(uri: str, duration: float, num_speakers: int, rng: np.random.Generator,
                 config: ConversationConfig | None = None, reverb: bool = True, noise: bool = True,
                 cache_dir: Path | None = None, real_voices: bool = True) -> Meeting:
    """Synthesise one meeting (see the module docstring)."""
    cfg = config or ConversationConfig()
    sr = SAMPLE_RATE
    total = int(round(duration * sr))
    voices = pick_voices(rng, num_speakers, real=real_voices)
    labels = [f"spk{k}" for k in range(num_speakers)]
    keep_requested = labels
    placed = _plan_conversation(rng, voices, duration, cfg, cache_dir)

    gains_db = rng.uniform(-cfg.level_range_db, cfg.level_range_db, size=num_speakers)
    rt60 = float(rng.uniform(*cfg.rt60))
    drrs = rng.uniform(*cfg.drr_db, size=num_speakers)
    irs = [room_impulse_response(rng, rt60, float(d)) for d in drrs] if reverb else None
    snr_db = float(rng.uniform(*cfg.snr_db))
    exponent = float(rng.uniform(0.0, 2.0))
    noise_wave = coloured_noise(rng, total, exponent) if noise else np.zeros(total)

    from scipy.signal import fftconvolve

    sources = np.zeros((num_speakers, total), dtype=np.float32)
    raw_segments: dict[int, list[tuple[float, float]]] = {k: [] for k in range(num_speakers)}
    for item in placed:
        k = item.speaker
        wav = item.waveform.astype(np.float64) * cfg.speech_rms * 10 ** (gains_db[k] / 20)
        offset = item.start / sr
        for start, end in activity_segments(item.waveform):
            raw_segments[k].append((offset + start, min(offset + end, duration)))
        if irs is not None:
            wav = fftconvolve(wav, irs[k])  # the tail may run past the utterance
        end = min(total, item.start + len(wav))
        sources[k, item.start:end] += wav[: end - item.start].astype(np.float32)

    # a speaker who never got a word in (very short meetings) is left out; labels stay spk0..N-1
    keep = [k for k in range(num_speakers) if raw_segments[k]]
    sources = sources[keep]
    voices, gains_db, drrs = [voices[k] for k in keep], gains_db[keep], drrs[keep]
    raw_segments = {j: raw_segments[k] for j, k in enumerate(keep)}
    num_speakers, labels = len(keep), labels[: len(keep)]

    speech = sources.sum(axis=0, dtype=np.float64)
    active = np.zeros(total, dtype=bool)
    for k in range(num_speakers):
        for start, end in raw_segments[k]:
            active[int(start * sr):int(end * sr)] = True
    speech_power = float(np.mean(speech[active] ** 2)) if active.any() else cfg.speech_rms ** 2
    noise_wave = noise_wave * np.sqrt(speech_power / 10 ** (snr_db / 10))
    mixture = speech + noise_wave
    peak = float(np.max(np.abs(mixture))) if total else 0.0
    scale = 0.9 / peak if peak > 0.9 else 1.0  # no clipping: scale everything alike
    sources32 = sources if scale == 1.0 else (sources * scale).astype(np.float32)
    noise32 = (noise_wave * scale).astype(np.float32)
    mixture32 = (sources32.astype(np.float64).sum(axis=0) + noise32).astype(np.float32)

    segments = {labels[k]: merge_segments(raw_segments[k]) for k in range(num_speakers)}
    meta = {
        "uri": uri, "duration": duration, "sample_rate": sr, "requested_speakers": len(keep_requested),
        "speakers": {labels[k]: {"voice": asdict(voices[k]), "voice_name": voices[k].name,
                                 "gain_db": round(float(gains_db[k]), 2),
                                 "drr_db": round(float(drrs[k]), 2) if reverb else None}
                     for k in range(num_speakers)},
        "reverb": reverb, "rt60": round(rt60, 3) if reverb else None,
        "noise": noise, "snr_db": round(snr_db, 2) if noise else None,
        "noise_exponent": round(exponent, 2), "scale": scale,
        "utterances": len(placed), "backchannels": sum(p.backchannel for p in placed),
    }
    meta.update(speech_statistics(segments, duration))
    return Meeting(uri, labels, sources32, noise32, mixture32, segments, meta)


def speech_statistics(segments: dict[str, list[tuple[float, float]]], duration: float,
                      resolution: float = 0.01) -> dict[str, float]:
    """Speech time, overlapped time (>= 2 speakers) and overlap ratio (overlapped / speech)."""
    n = int(np.ceil(duration / resolution)) + 1
    count = np.zeros(n, dtype=np.int32)
    for segs in segments.values():
        for start, end in segs:
            count[int(round(start / resolution)):int(round(end / resolution))] += 1
    speech = float((count >= 1).sum() * resolution)
    overlap = float((count >= 2).sum() * resolution)
    return {"speech_time": round(speech, 3), "overlap_time": round(overlap, 3),
            "overlap_ratio": round(overlap / speech, 4) if speech > 0 else 0.0,
            "speech_ratio": round(speech / duration, 4) if duration > 0 else 0.0}


def parse_speakers(text: str) -> tuple[int, int]:
    """'2-4' -> (2, 4); '3' -> (3, 3). Raises PixitError for anything else."""
    parts = str(text).strip().split("-")
    try:
        if len(parts) == 1:
            low = high = int(parts[0])
        elif len(parts) == 2:
            low, high = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise PixitError(f"--speakers must look like MIN-MAX (e.g. 2-4), got {text!r}") from None
    return validate_speakers((low, high))


def validate_speakers(speakers: tuple[int, int]) -> tuple[int, int]:
    low, high = (int(speakers[0]), int(speakers[1]))
    if low < 1:
        raise PixitError(f"--speakers: the minimum must be at least 1, got {low}-{high}")
    if high < low:
        raise PixitError(f"--speakers: the maximum is smaller than the minimum ({low}-{high})")
    if high > 10:
        raise PixitError(f"--speakers: at most 10 speakers per meeting, got {low}-{high}")
    return low, high


def make_corpus(out_dir: str | os.PathLike, num_meetings: int, duration: float,
                speakers: tuple[int, int] = (2, 3), seed: int = 0, *, prefix: str = "meeting",
                reverb: bool = True, noise: bool = True, write_sources: bool = True,
                pcm16: bool = False, cache_dir: str | os.PathLike | None = "default", real_voices: bool = True,
                config: ConversationConfig | None = None, progress: ProgressFn | None = None,
                should_stop: Callable[[], bool] | None = None) -> Path:
    """Write `num_meetings` synthetic meetings of `duration` seconds into `out_dir`; return the
    manifest path. Same seed -> identical audio and annotations; meeting i does not depend on
    `num_meetings`. Each meeting draws its number of speakers in `speakers` (min, max); in a very
    short meeting a speaker who never gets a word in is left out (sources == RTTM labels).

    cache_dir: "default" (see default_cache_dir), a folder, or None for no cache.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PixitError(f"--out {out} exists and is not a folder")
    try:
        num_meetings = int(num_meetings)
        duration = float(duration)
        seed = int(seed)
    except (TypeError, ValueError):
        raise PixitError("num_meetings, duration and seed must be numbers") from None
    if num_meetings < 1:
        raise PixitError(f"--num-meetings must be at least 1, got {num_meetings}")
    if not np.isfinite(duration) or duration <= 0:
        raise PixitError(f"--duration must be a positive number of seconds, got {duration:g}")
    if duration > 2 * 3600:
        raise PixitError(f"--duration is at most 2 hours (7200 s) per meeting, got {duration:g}")
    if seed < 0:
        raise PixitError(f"--seed must be >= 0, got {seed}")
    if not prefix or any(ch in prefix for ch in "/\\ \t\n,"):
        raise PixitError(f"--prefix must be a plain name without spaces, slashes or commas, got {prefix!r}")
    low, high = validate_speakers(speakers)
    _require_espeak()
    _, variants = available_voice_parts()
    if high > len(variants):
        raise PixitError(f"--speakers: at most {len(variants)} distinct voices are available, got {low}-{high}")
    cache = default_cache_dir() if cache_dir == "default" else (Path(cache_dir) if cache_dir else None)

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PixitError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    rows = []
    stats = []
    started = time.perf_counter()
    width = max(3, len(str(num_meetings - 1)))
    for i in range(num_meetings):
        if should_stop is not None and should_stop():
            raise Cancelled(f"synthesis stopped after {i} of {num_meetings} meetings")
        uri = f"{prefix}{i:0{width}d}"
        if progress is not None:
            progress(i / num_meetings, f"meeting {i + 1}/{num_meetings} ({uri})")
        rng = np.random.default_rng([seed, i])
        n_spk = int(rng.integers(low, high + 1))
        meeting = make_meeting(uri, duration, n_spk, rng, config=config, reverb=reverb, noise=noise,
                               cache_dir=cache, real_voices=real_voices)
        write_meeting(meeting, out, write_sources=write_sources, pcm16=pcm16)
        rows.append((f"{uri}.wav", f"{uri}.rttm", f"{uri}.uem", f"sources/{uri}" if write_sources else ""))
        stats.append(meeting.meta)
    elapsed = time.perf_counter() - started
    lines = ["audio,rttm,uem,sources"] + [",".join(row) for row in rows]
    manifest = out / "manifest.csv"
    atomic_write_text(manifest, "\n".join(lines) + "\n")
    speech = sum(m["speech_time"] for m in stats)
    overlap = sum(m["overlap_time"] for m in stats)
    atomic_write_json(out / "stats.json", {
        "meetings": num_meetings, "duration": duration, "speakers": [low, high], "seed": seed,
        "total_duration": round(num_meetings * duration, 3), "speech_time": round(speech, 3),
        "overlap_time": round(overlap, 3), "overlap_ratio": round(overlap / speech, 4) if speech else 0.0,
        "seconds": round(elapsed, 3),
        "seconds_per_minute": round(elapsed / (num_meetings * duration / 60), 3),
    })
    if progress is not None:
        progress(1.0, f"{num_meetings} meetings written to {out}")
    return manifest


def write_meeting(meeting: Meeting, out: Path, write_sources: bool = True, pcm16: bool = False) -> None:
    """Write one meeting into the corpus layout (mixture, rttm, uem, sources, noise, meta)."""
    from pyannote.core import Segment, Timeline

    from core.annotation import write_rttm, write_uem

    uri = meeting.uri
    save = _save_pcm16 if pcm16 else _save_float
    save(out / f"{uri}.wav", meeting.mixture)
    write_rttm(meeting.annotation(), out / f"{uri}.rttm", uri=uri)
    write_uem(Timeline([Segment(0.0, meeting.duration)], uri=uri), out / f"{uri}.uem", uri=uri)
    if write_sources:
        folder = out / "sources" / uri
        folder.mkdir(parents=True, exist_ok=True)
        if folder.is_dir():  # a rerun with fewer speakers must not leave stale labels behind
            for old in folder.glob("*.wav"):
                if old.stem not in meeting.labels:
                    old.unlink()
        for label, source in zip(meeting.labels, meeting.sources):
            save(folder / f"{label}.wav", source)
        save(out / "noise" / f"{uri}.wav", meeting.noise)
    atomic_write_json(out / "meta" / f"{uri}.json", meeting.meta)


def _save_float(path: Path, waveform: np.ndarray) -> None:
    from core.audio import save_audio

    save_audio(path, waveform, SAMPLE_RATE)


def _save_pcm16(path: Path, waveform: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.wav")
    os.close(fd)
    try:
        sf.write(tmp, np.clip(waveform, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; shipped / shared files should be readable
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def corpus_statistics(manifest: str | os.PathLike) -> dict[str, float]:
    """Speech / overlap statistics of a corpus, from its RTTM and UEM files (any manifest)."""
    from core.annotation import read_rttm_single
    from core.audio import audio_info

    manifest = Path(manifest)
    speech = overlap = total = 0.0
    with open(manifest, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            duration = audio_info(manifest.parent / row["audio"])[0]
            annotation = read_rttm_single(manifest.parent / row["rttm"])
            segments: dict[str, list[tuple[float, float]]] = {}
            for seg, _, label in annotation.itertracks(yield_label=True):
                segments.setdefault(str(label), []).append((seg.start, seg.end))
            s = speech_statistics(segments, duration)
            speech += s["speech_time"]
            overlap += s["overlap_time"]
            total += duration
    return {"duration": round(total, 3), "speech_time": round(speech, 3), "overlap_time": round(overlap, 3),
            "overlap_ratio": round(overlap / speech, 4) if speech else 0.0}
