"""Stage 4: stitched activations on the global frame grid, and the discrete diarization.

A Hann-weighted average keeps chunk edges (where the model sees least context) from dominating;
two local speakers mapped to one global speaker are combined by max, since both are estimates of
the same activity.
"""

from __future__ import annotations

import numpy as np

from core.pipeline.windows import ChunkOutputs, _window


def stitch_activations(outputs: ChunkOutputs, hard: np.ndarray, n_speakers: int) -> np.ndarray:
    """(frames, n_speakers) float32: Hann-weighted average over all chunks covering each frame
    (a chunk where a speaker is absent counts as 0 for it)."""
    F = outputs.activations.shape[2]
    total = outputs.num_frames
    out = np.zeros((total, n_speakers), np.float32)
    wsum = np.zeros(total, np.float32)
    w = _window(F)
    for c in range(outputs.num_chunks):
        o = outputs.frame_offsets[c]
        wsum[o : o + F] += w
        per_speaker: dict[int, np.ndarray] = {}
        for k in np.flatnonzero(hard[c] >= 0):
            g = int(hard[c, k])
            a = outputs.activations[c, k]
            per_speaker[g] = a if g not in per_speaker else np.maximum(per_speaker[g], a)
        for g, a in per_speaker.items():
            out[o : o + F, g] += w * a
    np.divide(out, np.maximum(wsum, 1e-12)[:, None], out=out)
    return out


def binarize(
    activations: np.ndarray,
    threshold: float,
    frame_step: float,
    min_duration_on: float = 0.0,
    min_duration_off: float = 0.0,
) -> np.ndarray:
    """(frames, S) bool: activations > threshold, pauses shorter than min_duration_off filled,
    turns shorter than min_duration_on removed (durations in seconds, frame_step in seconds)."""
    binary = activations > threshold
    if min_duration_off > 0:
        gap = int(round(min_duration_off / frame_step))
        for s in range(binary.shape[1]):
            starts, ends = _runs(~binary[:, s])
            for a, b in zip(starts, ends):
                if a > 0 and b < len(binary) and b - a < gap:
                    binary[a:b, s] = True
    if min_duration_on > 0:
        short = int(round(min_duration_on / frame_step))
        for s in range(binary.shape[1]):
            starts, ends = _runs(binary[:, s])
            for a, b in zip(starts, ends):
                if b - a < short:
                    binary[a:b, s] = False
    return binary


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the True runs of a 1-d bool array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def frame_intervals(binary_column: np.ndarray, frame_step: int, frame_size: int, num_samples: int) -> np.ndarray:
    """(n, 2) sample intervals of the active runs; frame f owns the frame_step samples around its centre."""
    starts, ends = _runs(binary_column)
    offset = (frame_size - frame_step) // 2
    a = np.where(starts == 0, 0, starts * frame_step + offset)
    b = np.where(ends == len(binary_column), num_samples, ends * frame_step + offset)
    out = np.stack([a, b], axis=1).astype(np.int64) if len(starts) else np.zeros((0, 2), np.int64)
    return np.clip(out, 0, num_samples)
