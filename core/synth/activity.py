"""Speech activity of dry utterances: the energy VAD that the RTTM of a synthetic meeting comes from.

10 ms frames, active when within -40 dB of the loudest frame (and above digital silence), gaps
shorter than 0.1 s merged, blips shorter than 30 ms dropped. Run on each *dry* utterance, it marks
exactly where each source speaks (reverberation tails run on past a segment end, as they do in real
recordings annotated from close-talk speech).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

SAMPLE_RATE = 16_000  # == core.audio.SAMPLE_RATE (core.audio, i.e. scipy, is imported when needed)
VAD_FRAME = 160  # 10 ms at 16 kHz
VAD_THRESHOLD_DB = -40.0  # relative to the loudest frame
MIN_GAP = 0.1  # gaps shorter than this (s) are merged into one speech segment
MIN_SEGMENT = 0.03


def trim(waveform: np.ndarray, margin: int = 320) -> np.ndarray:
    """The waveform cut to its speech (+ `margin` samples on each side); empty if it is silent."""
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
