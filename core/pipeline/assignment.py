"""Stage 3: local speakers -> global speakers.

Agglomerative clustering of the embeddings, then a constrained (Hungarian) assignment so that two
local speakers of one chunk never become the same global speaker; local speakers without an
embedding are placed by continuity with the neighbouring chunks. Clustering runs on at most
MAX_CLUSTERING_EMBEDDINGS evenly spread embeddings (linkage needs n^2/2 distances).
"""

from __future__ import annotations

import numpy as np

from core.pipeline.local_embeddings import EmbeddingSet
from core.pipeline.params import PipelineParams
from core.pipeline.windows import ChunkOutputs

MAX_CLUSTERING_EMBEDDINGS = 4000  # 4000^2 / 2 float64 distances = 64 MB


def assign_speakers(
    outputs: ChunkOutputs,
    embeddings: EmbeddingSet,
    params: PipelineParams,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
) -> tuple[np.ndarray, int]:
    """(C, K) global speaker of each local speaker (-1: dropped) and the number of global speakers."""
    from core.clustering import assign_chunks, centroids_of, cluster_embeddings

    C, K = outputs.num_chunks, outputs.num_local
    if len(embeddings.vectors) == 0 and len(outputs.src_chunk):
        # nobody ever speaks alone: cluster the separated-source embeddings instead
        use = embeddings.active[outputs.src_chunk, outputs.src_local]
        embeddings = EmbeddingSet(outputs.src_chunk[use], outputs.src_local[use], outputs.src_vectors[use],
                                  embeddings.active, embeddings.threshold)
    if len(embeddings.vectors) == 0:
        return np.full((C, K), -1, np.int64), 0
    # hierarchical clustering needs n^2/2 distances: above MAX_CLUSTERING_EMBEDDINGS (an hour of
    # meeting gives 10-20 thousand near-duplicate embeddings from overlapping windows) it runs on
    # an evenly spread subset; every embedding is then assigned to the centroids below anyway
    n = len(embeddings.vectors)
    subset = np.unique(np.linspace(0, n - 1, MAX_CLUSTERING_EMBEDDINGS).astype(np.int64)) if n > MAX_CLUSTERING_EMBEDDINGS else np.arange(n)
    labels = cluster_embeddings(
        embeddings.vectors[subset], params.clustering_threshold, params.clustering_method,
        num_speakers, min_speakers, max_speakers, params.min_cluster_size,
    )
    centroids = centroids_of(embeddings.vectors[subset], labels)
    chunk, local, vectors = embeddings.chunk, embeddings.local, embeddings.vectors
    if len(outputs.src_chunk):
        # separated-source embeddings of active local speakers that have no mixture embedding
        have = np.zeros((C, K), bool)
        have[chunk, local] = True
        use = embeddings.active[outputs.src_chunk, outputs.src_local] & ~have[outputs.src_chunk, outputs.src_local]
        if use.any() and outputs.src_vectors.shape[1] == vectors.shape[1]:
            chunk = np.concatenate([chunk, outputs.src_chunk[use]])
            local = np.concatenate([local, outputs.src_local[use]])
            vectors = np.concatenate([vectors, outputs.src_vectors[use]])
    hard = assign_chunks(chunk, local, vectors, centroids, C, K)
    _assign_by_continuity(outputs, hard, embeddings.active, len(centroids), embeddings.threshold)
    return hard, len(centroids)


def _assign_by_continuity(outputs: ChunkOutputs, hard: np.ndarray, active: np.ndarray, n_speakers: int, threshold: float) -> None:
    """Active local speakers without an embedding: the unused global speaker whose assigned local
    speakers in the neighbouring chunks overlap most with this one's activations (in place)."""
    todo_c, todo_k = np.nonzero(active & (hard < 0))
    if len(todo_c) == 0 or n_speakers == 0:
        return
    acts, offs, F = outputs.activations, outputs.frame_offsets, outputs.activations.shape[2]
    for c, k in zip(todo_c, todo_k):
        scores = np.zeros(n_speakers)
        a = acts[c, k] * (acts[c, k] > threshold)
        lo, hi = np.searchsorted(offs, offs[c] - F + 1), np.searchsorted(offs, offs[c] + F)
        for c2 in range(lo, hi):
            if c2 == c:
                continue
            shift = offs[c2] - offs[c]
            f0, f1 = max(0, shift), min(F, F + shift)
            if f1 <= f0:
                continue
            for k2 in np.flatnonzero(hard[c2] >= 0):
                b = acts[c2, k2, f0 - shift : f1 - shift]
                scores[hard[c2, k2]] += float(np.dot(a[f0:f1], b * (b > threshold)))
        used = hard[c][hard[c] >= 0]
        free = np.setdiff1d(np.arange(n_speakers), used)
        pool = free if len(free) else np.arange(n_speakers)
        best = pool[np.argmax(scores[pool])]
        if scores[best] > 0:
            hard[c, k] = best
