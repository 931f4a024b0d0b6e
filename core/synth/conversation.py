"""Turn-taking of a synthetic meeting: who says what when.

One speaker holds the floor for a turn of 1-4 sentences, the others answer with short
backchannels ("yeah", "mm-hmm") during long turns, turns follow each other with short gaps or
start before the previous one ended (interruptions), so that about 20 % of the speech time is
overlapped, as in AMI. Participation is unequal (Dirichlet weights per meeting).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.synth.activity import SAMPLE_RATE, VAD_FRAME, frame_activity
from core.synth.engines import engines
from core.synth.text import BACKCHANNELS, choice, sentence_pools
from core.synth.voices import Voice, synthesize


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
    utterance_level_db: float = 1.5        # per-utterance level jitter: +- this
    speech_rms: float = 0.05               # reference speech level (about -26 dBFS)


@dataclass
class Placed:
    speaker: int
    start: int  # sample
    waveform: np.ndarray
    text: str
    backchannel: bool


def plan_conversation(rng: np.random.Generator, voices: list[Voice], duration: float,
                      cfg: ConversationConfig, cache_dir: Path | None) -> list[Placed]:
    """Every utterance of the meeting (dry, levelled to unit speech RMS x jitter) and where it starts."""
    english, pseudo = sentence_pools()
    n = len(voices)
    sr = SAMPLE_RATE
    total = int(round(duration * sr))
    weights = rng.dirichlet([cfg.dominance_concentration] * n)
    busy = np.zeros(n)  # per speaker: time (s) when its last utterance ends
    placed: list[Placed] = []

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
        placed.append(Placed(speaker, begin, wav, text, backchannel))
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
            short = engines()["real"].short_clips(voices[speaker].ident)
            return f"clip:{short[int(rng.integers(len(short)))]}" if short else None
        return choice(rng, BACKCHANNELS)

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

