"""Stage 1: the model on sliding windows, and the chunk / frame geometry the later stages share.

Only what the later stages need is kept: every chunk's frame activations, and the sources of the
*separation chunks* (half a window apart) as float16 with a per-source scale, or none at all for
long recordings (then they are recomputed while stitching). Nothing of size
chunks x window x speakers at the diarization step is ever held in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core.audio import SAMPLE_RATE
from core.errors import PixitError
from core.pipeline.params import PipelineParams
from core.pipeline.progress import Progress, ShouldStop, _check


@dataclass
class ChunkOutputs:
    """What the model said about every chunk, in bounded memory (see the core.pipeline docstring)."""

    waveform: np.ndarray          # (N_pad,) float32 mixture, zero-padded to at least one window
    num_samples: int              # N, the real length
    sample_rate: int
    window: int                   # samples per chunk
    starts: np.ndarray            # (C,) chunk start samples
    frame_offsets: np.ndarray     # (C,) chunk start on the global frame grid
    frame_step: int
    frame_size: int
    activations: np.ndarray       # (C, K, F) float32
    sep_chunks: np.ndarray        # (M,) indices of the chunks whose sources are stitched
    sep_sources: np.ndarray | None  # (M, K, W) float16, scaled to peak 1, or None
    sep_scales: np.ndarray | None   # (M, K) float32
    # not cached: (chunk starts) -> (b, K, W) float32 sources, the model run again
    recompute_sources: Callable[[np.ndarray], np.ndarray] | None = None
    batch_size: int = 32          # chunks per recomputation
    # embeddings of separated sources of local speakers without enough single-speaker speech
    src_chunk: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    src_local: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    src_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    speech: np.ndarray | None = None  # VAD speech mask on the frame grid (core.pipeline.speech), once computed

    @property
    def num_chunks(self) -> int:
        return len(self.starts)

    @property
    def num_local(self) -> int:
        return self.activations.shape[1]

    @property
    def num_frames(self) -> int:
        return int(self.frame_offsets[-1]) + self.activations.shape[2]

    @property
    def has_sources(self) -> bool:
        return self.sep_sources is not None or self.recompute_sources is not None

    def iter_chunk_sources(self, needed: np.ndarray, progress: Progress = None, should_stop: ShouldStop = None):
        """Yield (m, (K, W) float32 sources or None when not `needed[m]`) for every separation chunk,
        in order: from the cache one chunk at a time, or recomputed `batch_size` chunks at a time."""
        if self.sep_sources is not None:
            for m in range(len(self.sep_chunks)):
                yield m, (self.sep_sources[m].astype(np.float32) * self.sep_scales[m][:, None]) if needed[m] else None
            return
        if self.recompute_sources is None:
            raise ValueError("the chunk outputs were computed without sources")
        M = len(self.sep_chunks)
        for b0 in range(0, M, self.batch_size):
            ms = np.arange(b0, min(b0 + self.batch_size, M))
            want = ms[needed[ms]]
            batch = dict(zip(want, self.recompute_sources(self.starts[self.sep_chunks[want]]))) if len(want) else {}
            _check(progress, should_stop, ms[-1] / M, f"separated {ms[-1] + 1}/{M} windows again")
            for m in ms:
                yield int(m), batch.pop(m, None)


def chunk_starts(num_samples: int, window: int, step: int) -> np.ndarray:
    """Regular starts, plus one window aligned to the end if the grid does not reach it."""
    n = max(num_samples, window)
    starts = np.arange(0, n - window + 1, step, dtype=np.int64)
    if starts[-1] + window < n:
        starts = np.append(starts, n - window)
    return starts


def separation_chunks(starts: np.ndarray, step: int, window: int, separation_step: int | None) -> np.ndarray:
    sep = window // 2 if separation_step is None else separation_step
    m = max(1, int(round(sep / step)))
    idx = np.arange(0, len(starts), m)
    if idx[-1] != len(starts) - 1:
        idx = np.append(idx, len(starts) - 1)
    return idx


def _model_geometry(model) -> tuple[int, int, int]:
    sr = int(getattr(getattr(model, "config", None), "sample_rate", SAMPLE_RATE))
    return sr, int(model.frame_step), int(model.frame_size)


def _analyse(model, x):
    """Activations (B, K, F) of a batch, and `sources_of(rows, speakers)` -> (M, T) for the (window,
    local speaker) pairs asked for. A model with `analyse` / `decode` (ToTaToNet) decodes only those:
    with a 1 s step, only the separation chunks (every half window) and a few embeddings need
    sources; any other model runs whole."""
    if hasattr(model, "analyse") and hasattr(model, "decode"):
        masked, acts = model.analyse(x)

        def sources_of(rows, locs):
            return model.decode(masked[_index(rows, masked), _index(locs, masked)], x.shape[-1])
    else:
        sources, acts = model(x)

        def sources_of(rows, locs):
            return sources[_index(rows, sources), _index(locs, sources)]
    return sources_of, acts


def _every_source(sources_of, rows: np.ndarray, k: int, window: int):
    """All K local sources of the batch rows `rows`, (len(rows), K, window), NaN / inf zeroed."""
    return _finite(sources_of(np.repeat(rows, k), np.tile(np.arange(k), len(rows))).reshape(-1, k, window))


def _index(positions, like):
    import torch

    return torch.from_numpy(np.asarray(positions, np.int64)).to(like.device)


def run_model(
    model,
    waveform: np.ndarray,
    params: PipelineParams,
    device: str = "cpu",
    return_sources: bool = True,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    encoder: Callable[[list[np.ndarray]], np.ndarray] | None = None,
    source_embeddings: str = "missing",
    cache_sources: bool = True,
) -> ChunkOutputs:
    """Run the model on every sliding window (batched); see the core.pipeline docstring for what is kept.

    `cache_sources=False` keeps no separated sources: they are recomputed when stitched.

    With an `encoder`, local speakers that are active (activation > threshold) but have less than
    `min_embedding_duration` of single-speaker speech are embedded from their *separated source*
    on their active frames (the mixture there holds other speakers too); those embeddings take
    part in the per-chunk assignment, not in the clustering. `source_embeddings="all"` embeds every
    active local speaker that way (tuning: theta changes which ones lack a mixture embedding).
    """
    import torch

    sr, frame_step, frame_size = _model_geometry(model)
    n = len(waveform)
    window = int(round(params.window * sr))
    step = max(1, int(round(params.step * sr)))
    if window < frame_size:
        raise PixitError(f"window {params.window} s is shorter than one diarization frame")
    padded = waveform if n >= window else np.pad(waveform, (0, window - n))
    padded = np.ascontiguousarray(padded, dtype=np.float32)
    starts = chunk_starts(n, window, step)
    sep_idx = separation_chunks(starts, step, window, None if params.separation_step is None else int(round(params.separation_step * sr)))
    sep_pos = np.full(len(starts), -1, np.int64)
    sep_pos[sep_idx] = np.arange(len(sep_idx))

    activations = None
    sep_sources = sep_scales = None
    cache = return_sources and cache_sources
    batch = params.batch_size
    view = np.lib.stride_tricks.sliding_window_view(padded, window)  # no copy
    src_c, src_k, src_v = [], [], []
    min_frames = max(1, int(math.ceil(params.min_embedding_duration * sr / frame_step)))
    _check(progress, should_stop, 0.0, f"separating {len(starts)} windows")
    with torch.inference_mode():
        for b0 in range(0, len(starts), batch):
            idx = np.arange(b0, min(b0 + batch, len(starts)))
            x = torch.from_numpy(np.ascontiguousarray(view[starts[idx]])).to(device)
            sources_of, acts = _analyse(model, x)
            acts = acts.float().cpu().numpy()
            if activations is None:
                k, f = acts.shape[1], acts.shape[2]
                activations = np.zeros((len(starts), k, f), np.float32)
                if cache:
                    sep_sources = np.zeros((len(sep_idx), k, window), np.float16)
                    sep_scales = np.zeros((len(sep_idx), k), np.float32)
            activations[idx] = np.nan_to_num(acts, nan=0.0)
            if encoder is not None:
                binary = activations[idx] > params.threshold
                clean = (binary & (binary.sum(axis=1, keepdims=True) == 1)).sum(axis=2)
                need = binary.any(axis=2) if source_embeddings == "all" else binary.any(axis=2) & (clean < min_frames)
                rows, locs = np.nonzero(need)
                if len(rows):
                    src_np = sources_of(rows, locs).float().cpu().numpy()
                    waves = [src_np[i][_frames_to_samples(binary[r, k], frame_step, frame_size, window)]
                             for i, (r, k) in enumerate(zip(rows, locs))]
                    src_v.append(np.asarray(encoder(waves), np.float32))
                    src_c.append(idx[rows])
                    src_k.append(locs)
            if cache:
                keep = sep_pos[idx] >= 0
                if keep.any():
                    src = _every_source(sources_of, np.flatnonzero(keep), k, window)
                    peak = src.abs().amax(dim=-1).clamp_min(1e-12)  # (b, K)
                    sep_sources[sep_pos[idx][keep]] = (src / peak[..., None]).half().cpu().numpy()
                    sep_scales[sep_pos[idx][keep]] = peak.cpu().numpy()
            del sources_of, acts
            _check(progress, should_stop, idx[-1] / len(starts), f"separated {idx[-1] + 1}/{len(starts)} windows")
    frame_offsets = np.round(starts / frame_step).astype(np.int64)
    extra = {}
    if src_v:
        vecs = np.concatenate(src_v)
        ok = np.all(np.isfinite(vecs), axis=1) & (np.linalg.norm(vecs, axis=1) > 0)
        extra = dict(src_chunk=np.concatenate(src_c)[ok], src_local=np.concatenate(src_k)[ok], src_vectors=vecs[ok])
    if return_sources and not cache:
        def recompute(chunk_starts: np.ndarray) -> np.ndarray:
            """Every local source of these chunks, through the same decoding as the cached ones."""
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(view[chunk_starts])).to(device)
                sources_of, _ = _analyse(model, x)
                return _every_source(sources_of, np.arange(len(chunk_starts)), activations.shape[1], window).cpu().numpy()

        extra["recompute_sources"] = recompute
    return ChunkOutputs(
        waveform=padded, num_samples=n, sample_rate=sr, window=window, starts=starts,
        frame_offsets=frame_offsets, frame_step=frame_step, frame_size=frame_size,
        activations=activations, sep_chunks=sep_idx, sep_sources=sep_sources, sep_scales=sep_scales,
        batch_size=batch, **extra,
    )


def _finite(sources):
    """float32 sources with NaN / inf replaced by 0 (a model can emit them on digital silence)."""
    return sources.float().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def _frames_to_samples(mask: np.ndarray, frame_step: int, frame_size: int, num_samples: int) -> np.ndarray:
    """Frame mask -> sample mask; frame f owns the frame_step samples around its centre."""
    offset = (frame_size - frame_step) // 2
    samples = np.zeros(num_samples, bool)
    rep = np.repeat(mask, frame_step)[: max(0, num_samples - offset)]
    samples[offset : offset + len(rep)] = rep
    return samples


def _window(n: int) -> np.ndarray:
    """Hann weights floored at 1e-3 so that an edge covered by one chunk only is still defined."""
    return np.maximum(np.hanning(n + 2)[1:-1], 1e-3).astype(np.float32)
