"""Stages 5-6: one separated track per speaker, then leakage removal.

SI-SDR training leaves each chunk's gain and sign arbitrary, so every chunk is fitted to what is
already stitched (or to the mixture) before it is overlap-added into one float32
(samples x speakers) buffer. Leakage removal works on sample intervals in place, so it is exact
for any collar and costs no extra buffer.
"""

from __future__ import annotations

import math

import numpy as np

from core.pipeline.progress import Progress, ShouldStop
from core.pipeline.windows import ChunkOutputs, _window


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares gains a minimising ||y - a @ x|| (x: (J, T) rows = signals, y: (T,))."""
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    y64 = np.ascontiguousarray(y, dtype=np.float64)
    # einsum, not BLAS: for J <= 3 rows OpenBLAS threading costs 10-100x more than the arithmetic
    gram = np.einsum("it,jt->ij", x64, x64)
    rhs = np.einsum("it,t->i", x64, y64)
    reg = 1e-9 * (np.trace(gram) / max(1, len(gram)) + 1e-20)
    return np.linalg.solve(gram + reg * np.eye(len(gram)), rhs)


def stitch_sources(
    outputs: ChunkOutputs,
    hard: np.ndarray,
    columns: dict[int, int],
    min_overlap_correlation: float = 0.5,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> np.ndarray:
    """(N, len(columns)) float32 per-speaker sources; `columns` maps global speaker -> column.

    See the core.pipeline docstring: gain-aligned, Hann-weighted overlap-add normalised by the weights
    actually added; memory is the output buffer plus one window of weights.
    """
    W = outputs.window
    n_pad = len(outputs.waveform)
    S = len(columns)
    out = np.zeros((n_pad, S), np.float32)
    if S == 0:
        return out[: outputs.num_samples]
    w = _window(W)
    origin = 0
    wtail = np.zeros((W, S), np.float32)  # weights added so far for samples [origin, origin + W)
    # (local source, output column) pairs of every separation chunk; chunks without any are not needed
    mapping = [[(k, columns[g]) for k, g in enumerate(hard[c]) if g >= 0 and g in columns] for c in outputs.sep_chunks]
    needed = np.array([bool(pairs) for pairs in mapping], bool)
    for m, x in outputs.iter_chunk_sources(needed, progress, should_stop):
        c = outputs.sep_chunks[m]
        s = int(outputs.starts[c])
        # samples before s will receive no more chunks: normalise them and slide the weight window
        _finalise(out, wtail, origin, s)
        shift = s - origin
        if shift:
            wtail = np.concatenate([wtail[shift:], np.zeros((min(shift, W), S), np.float32)])[:W]
            origin = s
        mapped = mapping[m]
        if not mapped:
            continue
        mix = outputs.waveform[s : s + W]
        joint = None
        for col in sorted({col for _, col in mapped}):
            xs = x[[k for k, cc in mapped if cc == col]]  # (J, W) local sources of this speaker
            locs = [k for k, cc in mapped if cc == col]
            ov = np.flatnonzero(wtail[:, col] > 0)
            gains = None
            if len(ov):
                ref = out[s + ov, col] / wtail[ov, col]
                xo = xs[:, ov]
                e_x = float(np.einsum("jt,jt->", xo, xo, dtype=np.float64))
                e_r = float(np.dot(ref, ref))
                if e_x > 0.05 * float(np.einsum("jt,jt->", xs, xs, dtype=np.float64)) and e_r > 1e-12 * len(ov):
                    g = _lstsq(xo, ref)
                    fit = np.einsum("j,jt->t", g.astype(np.float32), xo)
                    corr = float(np.dot(fit, ref)) / (math.sqrt(float(np.dot(fit, fit)) * e_r) + 1e-20)
                    if corr >= min_overlap_correlation:
                        gains = g
            if gains is None:  # nothing reliable stitched yet: fit all sources jointly to the mixture
                if joint is None:
                    joint = _lstsq(x, mix)
                gains = joint[locs]
            contrib = np.einsum("j,jt->t", gains.astype(np.float32), xs)  # (W,)
            contrib *= w
            out[s : s + W, col] += contrib
            wtail[:, col] += w
    _finalise(out, wtail, origin, n_pad)
    return out[: outputs.num_samples]


def _finalise(out: np.ndarray, wtail: np.ndarray, origin: int, upto: int) -> None:
    n = min(upto - origin, len(wtail))
    if n <= 0:
        return
    seg = out[origin : origin + n]
    np.divide(seg, wtail[:n], out=seg, where=wtail[:n] > 0)


def remove_leakage(sources: np.ndarray, intervals: list[np.ndarray], collar: int) -> None:
    """In place: zero column i outside its active sample intervals dilated by `collar` samples."""
    n = len(sources)
    for i, iv in enumerate(intervals):
        col = sources[:, i]
        if len(iv) == 0:
            col[:] = 0
            continue
        a = np.clip(iv[:, 0] - collar, 0, n)
        b = np.clip(iv[:, 1] + collar, 0, n)
        keep_start, keep_end = _merge(a, b)
        prev = 0
        for ks, ke in zip(keep_start, keep_end):
            col[prev:ks] = 0
            prev = ke
        col[prev:] = 0


def _merge(a: np.ndarray, b: np.ndarray) -> tuple[list[int], list[int]]:
    order = np.argsort(a)
    starts, ends = [], []
    for s, e in zip(a[order], b[order]):
        if starts and s <= ends[-1]:
            ends[-1] = max(ends[-1], e)
        else:
            starts.append(int(s))
            ends.append(int(e))
    return starts, ends
