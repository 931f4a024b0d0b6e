"""Where the model is unsure: places worth a human look, computed once per model run.

Three cues, each a list of (start, end, kind, detail):
- "threshold": a speaker's activation hovers near the decision threshold for a while;
- "short turn": a model turn shorter than `short` seconds (often a false alarm or a mis-split);
- "leakage": two separated tracks are strongly correlated over a window (one voice in two tracks).
"""

from __future__ import annotations

import numpy as np


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where mask is True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def near_threshold(activations: np.ndarray, start: float, step: float, threshold: float = 0.5,
                   margin: float = 0.15, min_duration: float = 0.25) -> list[tuple[float, float, str, str]]:
    """Regions where some speaker's activation stays within `margin` of the threshold."""
    act = np.asarray(activations, np.float32)
    if act.size == 0:
        return []
    near = np.abs(act - threshold) < margin  # (F, K)
    out = []
    for k in range(act.shape[1]):
        for a, b in _runs(near[:, k]):
            if (b - a) * step >= min_duration:
                out.append((start + a * step, start + b * step, "threshold",
                            f"activation of track {k + 1} near {threshold:.2f}"))
    return out


def short_turns(segments, short: float = 0.5) -> list[tuple[float, float, str, str]]:
    return [(a, b, "short turn", f"{spk}: {1000 * (b - a):.0f} ms turn") for a, b, spk in segments if b - a < short]


def leakage(sources: np.ndarray, sample_rate: int, labels: list[str], window: float = 0.5,
            min_corr: float = 0.5, chunk_windows: int = 240) -> list[tuple[float, float, str, str]]:
    """Windows where two separated tracks both carry signal and are strongly correlated."""
    if sources is None or sources.ndim != 2 or sources.shape[1] < 2:
        return []
    w = max(1, int(window * sample_rate))
    n_win = sources.shape[0] // w
    K = sources.shape[1]
    hits = np.zeros((n_win,), bool)
    which = np.zeros((n_win,), np.int32)
    for c0 in range(0, n_win, chunk_windows):
        c1 = min(n_win, c0 + chunk_windows)
        x = np.asarray(sources[c0 * w : c1 * w], np.float32).reshape(c1 - c0, w, K)
        x = x - x.mean(axis=1, keepdims=True)
        energy = (x ** 2).sum(axis=1)  # (n, K)
        loud = energy > 1e-4 * w * 1e-2  # the track is not (near) silent here
        for i in range(K):
            for j in range(i + 1, K):
                num = (x[:, :, i] * x[:, :, j]).sum(axis=1)
                den = np.sqrt(energy[:, i] * energy[:, j]) + 1e-12
                corr = np.abs(num / den)
                hit = (corr > min_corr) & loud[:, i] & loud[:, j]
                newly = hit & ~hits[c0:c1]
                which[c0:c1][newly] = i * K + j
                hits[c0:c1] |= hit
    out = []
    for a, b in _runs(hits):
        pair = int(which[a])
        i, j = divmod(pair, K)
        out.append((a * window, b * window, "leakage", f"tracks {labels[i]} and {labels[j]} share a voice"))
    return out


def unsure_places(activations: np.ndarray | None, act_start: float, act_step: float, threshold: float,
                  segments, sources: np.ndarray | None, sample_rate: int, labels: list[str],
                  gap: float = 0.5) -> list:
    """All cues, sorted by start time, as JSON-friendly lists (same-kind cues closer than `gap`
    seconds are joined, so that "next unsure place" does not stop every few frames)."""
    places = []
    if activations is not None:
        places += near_threshold(activations, act_start, act_step, threshold)
    places += short_turns(segments)
    if sources is not None:
        places += leakage(sources, sample_rate, labels)
    places.sort(key=lambda p: (p[0], p[1]))
    merged: list[list] = []
    last_of: dict[str, list] = {}
    for a, b, k, d in places:  # one place per stretch: join same-kind cues less than `gap` apart
        prev = last_of.get(k)
        if prev is not None and a - prev[1] < gap:
            prev[1] = max(prev[1], float(b))
            continue
        item = [float(a), float(b), k, d]
        merged.append(item)
        last_of[k] = item
    return [[round(a, 3), round(b, 3), k, d] for a, b, k, d in merged]


def next_place(places: list, t: float, step: int = 1):
    """The first place starting after t (step=1) or the last one starting before t (step=-1)."""
    if not places:
        return None
    if step > 0:
        for p in places:
            if p[0] > t + 1e-3:
                return p
        return places[0]  # wrap around
    for p in reversed(places):
        if p[0] < t - 1e-3:
            return p
    return places[-1]
