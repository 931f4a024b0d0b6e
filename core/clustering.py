"""Agglomerative clustering of local-speaker embeddings and constrained per-chunk assignment.

`cluster_embeddings` runs SciPy hierarchical clustering on L2-normalised embeddings. For the
"centroid" / "ward" / "median" linkages the distance is Euclidean between unit vectors
(d = sqrt(2 (1 - cos)), in [0, 2]), as in pyannote; for "average" / "complete" / "single" it is
the cosine distance (1 - cos, in [0, 2]). The clustering threshold delta is on that scale.
A fixed `num_speakers` cuts the dendrogram into exactly that many clusters; `min_speakers` /
`max_speakers` bound the number found with the threshold. Clusters smaller than `min_cluster_size`
are merged into their nearest large cluster (spurious clusters from short, noisy embeddings)
unless every cluster is small.

`assign_chunks` then maps each chunk's local speakers to DISTINCT global speakers with the
Hungarian algorithm on cosine similarity to the cluster centroids (pyannote's default is an
unconstrained argmax, which can map two local speakers of one chunk to the same speaker).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment

from core.errors import PixitError

EUCLIDEAN_METHODS = ("centroid", "ward", "median")
COSINE_METHODS = ("average", "complete", "single", "weighted")

__all__ = ["cluster_embeddings", "centroids_of", "assign_chunks", "check_speaker_bounds"]


def check_speaker_bounds(num_speakers=None, min_speakers=None, max_speakers=None) -> tuple:
    """Validate the speaker-count options (one-line PixitError for impossible combinations)."""
    for name, value in (("num_speakers", num_speakers), ("min_speakers", min_speakers), ("max_speakers", max_speakers)):
        if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1):
            raise PixitError(f"{name} must be a positive integer, got {value!r}")
    if num_speakers is not None and (min_speakers is not None or max_speakers is not None):
        if (min_speakers or 1) > num_speakers or (max_speakers or num_speakers) < num_speakers:
            raise PixitError(
                f"num_speakers={num_speakers} contradicts min_speakers={min_speakers} / max_speakers={max_speakers}"
            )
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise PixitError(f"min_speakers={min_speakers} is larger than max_speakers={max_speakers}")
    return num_speakers, min_speakers, max_speakers


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Cluster labels 0..n-1 in order of first appearance."""
    _, first = np.unique(labels, return_index=True)
    order = labels[np.sort(first)]
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping[x] for x in labels], dtype=np.int64)


def centroids_of(embeddings: np.ndarray, labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """L2-normalised mean embedding of each cluster (n, D)."""
    n = int(labels.max()) + 1 if n is None else n
    sums = np.zeros((n, embeddings.shape[1]), np.float64)
    np.add.at(sums, labels, embeddings)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def cluster_embeddings(
    embeddings: np.ndarray,
    threshold: float,
    method: str = "centroid",
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    min_cluster_size: int = 3,
) -> np.ndarray:
    """Cluster labels (n,) in 0..S-1 (numbered by first appearance) for (n, D) embeddings.

    A `num_speakers` larger than the number of embeddings is capped (with a warning): there cannot
    be more clusters than embeddings.
    """
    x = np.asarray(embeddings, np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64)
    check_speaker_bounds(num_speakers, min_speakers, max_speakers)
    if method not in EUCLIDEAN_METHODS + COSINE_METHODS:
        raise PixitError(f"unknown clustering method {method!r} (choose from {', '.join(EUCLIDEAN_METHODS + COSINE_METHODS)})")
    if num_speakers is not None and num_speakers > n:
        warnings.warn(
            f"num_speakers={num_speakers} but only {n} speaker embeddings were found; using {n}",
            stacklevel=2,
        )
        num_speakers = n
    if min_speakers is not None and min_speakers > n:
        min_speakers = n
    if n == 1:
        return np.zeros(1, np.int64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    metric = "euclidean" if method in EUCLIDEAN_METHODS else "cosine"
    tree = linkage(x, method=method, metric=metric)

    if num_speakers is not None:
        return _renumber(_cut(tree, num_speakers, x, method))

    labels = fcluster(tree, t=threshold, criterion="distance") - 1
    labels = _merge_small(labels, x, min_cluster_size)
    k = len(np.unique(labels))
    if min_speakers is not None and k < min_speakers:
        labels = _cut(tree, min_speakers, x, method)
    elif max_speakers is not None and k > max_speakers:
        labels = _cut(tree, max_speakers, x, method)
    return _renumber(labels)


def _cut(tree: np.ndarray, k: int, x: np.ndarray, method: str) -> np.ndarray:
    """Exactly k clusters when the dendrogram allows it (ties can give fewer)."""
    labels = fcluster(tree, t=k, criterion="maxclust") - 1
    if len(np.unique(labels)) != k and method in ("centroid", "median"):
        # centroid/median linkage can be non-monotonic: fall back to a cut by merge order
        n = len(x)
        parent = list(range(2 * n - 1))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for step, (a, b, _, _) in enumerate(tree[: n - k]):
            parent[int(a)] = n + step
            parent[int(b)] = n + step
        roots = np.array([find(i) for i in range(n)])
        labels = np.unique(roots, return_inverse=True)[1]
    return labels


def _merge_small(labels: np.ndarray, x: np.ndarray, min_cluster_size: int) -> np.ndarray:
    ids, counts = np.unique(labels, return_counts=True)
    large = ids[counts >= min_cluster_size]
    small = ids[counts < min_cluster_size]
    if len(large) == 0 or len(small) == 0:
        return labels
    centroids = centroids_of(x, np.searchsorted(ids, labels), len(ids))
    large_idx = np.searchsorted(ids, large)
    labels = labels.copy()
    for s in small:
        members = labels == s
        sims = x[members] @ centroids[large_idx].T
        labels[members] = large[np.argmax(sims, axis=1)]
    return labels


def assign_chunks(
    chunk_index: np.ndarray,
    local_index: np.ndarray,
    embeddings: np.ndarray,
    centroids: np.ndarray,
    num_chunks: int,
    num_local: int,
) -> np.ndarray:
    """(num_chunks, num_local) global speaker of each local speaker, -1 where it has no embedding.

    Within a chunk, the local speakers with an embedding get distinct global speakers (Hungarian
    assignment maximising cosine similarity); if a chunk has more of them than there are global
    speakers, the leftovers go to their most similar global speaker (their sources are then summed).
    """
    hard = np.full((num_chunks, num_local), -1, np.int64)
    if len(embeddings) == 0 or len(centroids) == 0:
        return hard
    sims = np.asarray(embeddings, np.float32) @ np.asarray(centroids, np.float32).T  # (n, S)
    order = np.argsort(chunk_index, kind="stable")
    chunk_sorted = chunk_index[order]
    bounds = np.flatnonzero(np.diff(chunk_sorted)) + 1
    for group in np.split(order, bounds):
        if len(group) == 0:
            continue
        c = int(chunk_index[group[0]])
        cost = -sims[group]
        rows, cols = linear_sum_assignment(cost)
        hard[c, local_index[group[rows]]] = cols
        rest = np.setdiff1d(np.arange(len(group)), rows)
        for r in rest:
            hard[c, local_index[group[r]]] = int(np.argmax(sims[group[r]]))
    return hard
