"""Stage 2: one speaker embedding per (chunk, local speaker), from the mixture.

Embedded on the samples where that local speaker is the only active one (the mixture there holds
no one else), and only with at least `min_embedding_duration` of them: short or overlapped
excerpts give embeddings that cluster badly. The encoders themselves live in `core.embeddings`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from core.pipeline.progress import Progress, ShouldStop, _check
from core.pipeline.windows import ChunkOutputs, _frames_to_samples


@dataclass
class EmbeddingSet:
    chunk: np.ndarray       # (n,) chunk index of each embedding
    local: np.ndarray       # (n,) local speaker index
    vectors: np.ndarray     # (n, D) float32 L2-normalised
    active: np.ndarray      # (C, K) bool: local speaker active somewhere in the chunk
    threshold: float        # theta used to binarise


def extract_embeddings(
    outputs: ChunkOutputs,
    threshold: float,
    encoder: Callable[[list[np.ndarray]], np.ndarray],
    min_duration: float = 0.5,
    block: int = 64,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> EmbeddingSet:
    """One embedding per (chunk, local speaker) from its single-speaker regions in the mixture."""
    binary = outputs.activations > threshold  # (C, K, F)
    active = binary.any(axis=2)
    single = binary & (binary.sum(axis=1, keepdims=True) == 1)
    min_frames = max(1, int(math.ceil(min_duration * outputs.sample_rate / outputs.frame_step)))
    cand_c, cand_k = np.nonzero(single.sum(axis=2) >= min_frames)
    vectors = []
    for b0 in range(0, len(cand_c), block):
        waves = []
        for c, k in zip(cand_c[b0 : b0 + block], cand_k[b0 : b0 + block]):
            start = outputs.starts[c]
            mask = _frames_to_samples(single[c, k], outputs.frame_step, outputs.frame_size, outputs.window)
            waves.append(outputs.waveform[start : start + outputs.window][mask])
        vectors.append(np.asarray(encoder(waves), np.float32))
        _check(progress, should_stop, (b0 + len(waves)) / max(1, len(cand_c)), "speaker embeddings")
    dim = vectors[0].shape[1] if vectors else 1
    vecs = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    ok = np.all(np.isfinite(vecs), axis=1) & (np.linalg.norm(vecs, axis=1) > 0)
    return EmbeddingSet(cand_c[ok], cand_k[ok], vecs[ok], active, threshold)
