"""Long-form joint diarization + separation (PixIT paper, section 2.2), in bounded memory.

Stages (each a public function, so `core.tuning` can re-run the cheap ones):

1. `run_model`: 5 s windows every 0.5 s (configurable), batched, `torch.inference_mode`. Keeps the
   frame-level activations of every chunk (C x K x F float32: about 54 MB per hour) and the
   sources of the *separation chunks* only: every m-th chunk, m = separation_step / step
   (default: half a window, i.e. 50 % overlap, research notes section 9.5), cached as float16
   with a per-source scale, i.e. about 2 x K_max x 2 bytes per sample (0.7 GB per hour at K_max=3).
   Recordings longer than `source_cache_minutes` (default 20) keep no sources at all: the model
   is run again on the separation chunks, in batches, while they are stitched (stage 5), which
   costs (step / separation step) more model time (+20 % at 0.5 s steps, +40 % at 1 s) and saves
   the cache. Nothing of size chunks x window x speakers at the diarization step is ever kept,
   and there are no float64 waveform arrays.
2. `extract_embeddings`: binarise activations with theta; embed each (chunk, local speaker) on the
   mixture samples where it is the only active speaker (concatenated), if there are at least
   `min_embedding_duration` seconds of them.
3. `assign_speakers`: agglomerative clustering with threshold delta (or a fixed / bounded number of
   speakers), then constrained (Hungarian) assignment so that the local speakers of one chunk go
   to distinct global speakers. Active local speakers without an embedding (only overlapped
   speech, or too short) are assigned by continuity: the activation overlap with the already
   assigned local speakers of the neighbouring chunks. Inactive local speakers are dropped.
4. `stitch_activations`: weighted (Hann) average of the chunk activations on the global 8 ms frame
   grid (max when two local speakers map to one speaker), binarised into the discrete diarization
   (`min_duration_off` / `min_duration_on`); speakers that are never active are removed.
5. `stitch_sources`: overlap-add straight into one float32 (samples x speakers) buffer. Before a
   chunk's source is added its gain (sign included) is fitted by least squares to what is already
   stitched on the overlap, or, when nothing reliable is stitched there yet, jointly with the
   chunk's other sources to the mixture. Hann weights; the division is by the sum of the weights
   actually added for that speaker (tracked only for the current window, so it costs no extra
   N x S buffer). Two local sources mapped to one speaker are summed, not maxed.
6. `remove_leakage`: zero a speaker's source wherever it is inactive and was not active within
   +-leakage_collar seconds; done on sample intervals in place (exact for any collar, including 0).

Clustering runs on at most MAX_CLUSTERING_EMBEDDINGS evenly spread embeddings (SciPy linkage
needs n^2/2 distances; an hour gives 10-20 thousand near-duplicates from the overlapping windows);
all embeddings are then assigned to the resulting centroids.

Peak memory is O(samples x speakers): waveform (4 B/sample) + source cache (12 B/sample at K_max=3,
none above `source_cache_minutes`) + output (4 B/sample/speaker). Audio shorter than one window is zero-padded to one window. Silence
gives an empty annotation and a (samples x 0) source array. `num_speakers` larger than the number
of speaker embeddings found is capped to that number with a warning (recorded in
`SeparationResult.warnings`), not an error, so that batch jobs on short files go on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pyannote.core import Annotation, Segment, SlidingWindow, SlidingWindowFeature

from core.audio import SAMPLE_RATE, load_audio, prepare_waveform, save_audio
from core.errors import Cancelled, PixitError

Progress = Callable[[float, str], None] | None
MAX_CLUSTERING_EMBEDDINGS = 4000  # 4000^2 / 2 float64 distances = 64 MB
ShouldStop = Callable[[], bool] | None

__all__ = [
    "PipelineParams", "Pipeline", "SeparationResult", "ChunkOutputs", "EmbeddingSet",
    "run_model", "extract_embeddings", "assign_speakers", "stitch_activations", "binarize",
    "stitch_sources", "remove_leakage", "speaker_label", "resolve_device",
]


# ----------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------
PARAMS_NAME = "params.json"  # pipeline parameters tuned for a model, stored in its folder


@dataclass
class PipelineParams:
    """Inference settings; JSON-serialisable (`pixit tune` writes them, the app and CLI load them)."""

    window: float = 5.0                  # chunk duration (s)
    step: float = 0.5                    # step between chunks (s)
    threshold: float = 0.5               # theta: activation threshold
    clustering_threshold: float = 0.6    # delta (Euclidean distance between unit embeddings, 0..2)
    leakage_collar: float = 0.5          # Delta t (s): keep a source this long around its speech
    min_duration_off: float = 0.0        # fill pauses shorter than this (s)
    min_duration_on: float = 0.0         # drop speech turns shorter than this (s)
    batch_size: int = 32                 # chunks per model forward
    embedding: str = "resemblyzer"       # speaker-embedding back end (core.embeddings)
    clustering_method: str = "centroid"  # scipy linkage method
    min_cluster_size: int = 3            # smaller clusters are merged into the nearest large one
    min_embedding_duration: float = 0.5  # s of single-speaker speech needed to embed a local speaker
    separation_step: float | None = None  # step of the chunks used for the sources (None: window/2)
    source_cache_minutes: float = 20.0   # longer recordings recompute the separation chunks (memory)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def positive(name, value, allow_zero=False):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
                raise PixitError(f"pipeline parameter {name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")

        positive("window", self.window)
        positive("step", self.step)
        if self.step > self.window:
            raise PixitError(f"pipeline parameter step ({self.step}) must not exceed window ({self.window})")
        if not isinstance(self.threshold, (int, float)) or not 0 < self.threshold < 1:
            raise PixitError(f"pipeline parameter threshold must be in (0, 1), got {self.threshold!r}")
        positive("clustering_threshold", self.clustering_threshold, allow_zero=True)
        for name in ("leakage_collar", "min_duration_off", "min_duration_on", "min_embedding_duration",
                     "source_cache_minutes"):
            positive(name, getattr(self, name), allow_zero=True)
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise PixitError(f"pipeline parameter batch_size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.min_cluster_size, int) or self.min_cluster_size < 1:
            raise PixitError(f"pipeline parameter min_cluster_size must be a positive integer, got {self.min_cluster_size!r}")
        if self.separation_step is not None:
            positive("separation_step", self.separation_step)
        if not isinstance(self.embedding, str) or not self.embedding:
            raise PixitError(f"pipeline parameter embedding must be a name, got {self.embedding!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PipelineParams":
        if not isinstance(data, dict):
            raise PixitError("pipeline parameters must be a JSON object")
        data = dict(data.get("params", data)) if isinstance(data.get("params"), dict) else dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"format", "version", "metrics"})
        if unknown:
            raise PixitError(f"unknown pipeline parameter(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        from core.fileio import atomic_write_json

        atomic_write_json(path, {"format": "pixit-pipeline-params", "version": 1, **self.to_dict(), **(extra or {})})

    @classmethod
    def for_model(cls, model) -> "PipelineParams":
        """The parameters tuned for a model: its folder's params.json when there is one, else the defaults."""
        if isinstance(model, (str, Path)):
            from core.models.totatonet import resolve_model_path

            path = resolve_model_path(model) / PARAMS_NAME
            if path.is_file():
                return cls.load(path)
        return cls()

    @classmethod
    def load(cls, path: str | Path) -> "PipelineParams":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PixitError(f"{path}: no such parameter file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PixitError(f"{path.name}: not a valid JSON parameter file ({str(exc).splitlines()[0]})") from None
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise PixitError(f"{path.name}: {exc}") from None
        except PixitError as exc:
            raise PixitError(f"{path.name}: {exc}") from None


def copy_tuned_params(source_model, model_dir: str | Path) -> None:
    """A model derived from another (fine-tuned, pruned) keeps the pipeline parameters tuned for it."""
    if source_model is None or not (Path(model_dir) / "config.json").is_file():
        return
    from core.fileio import atomic_write_text
    from core.models.totatonet import resolve_model_path

    source = resolve_model_path(source_model) / PARAMS_NAME
    if source.is_file():
        atomic_write_text(Path(model_dir) / PARAMS_NAME, source.read_text(encoding="utf-8"))


def speaker_label(i: int) -> str:
    return f"SPEAKER_{i:02d}"


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise PixitError(f"device {device!r} requested but no CUDA GPU is available (use --device cpu)")
    if str(device) not in ("cpu", "mps") and not str(device).startswith("cuda"):
        raise PixitError(f"unknown device {device!r} (use auto, cpu or cuda)")
    return str(device)


def _check(progress: Progress, should_stop: ShouldStop, fraction: float, message: str) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("stopped by the user")
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


# ----------------------------------------------------------------------------------------------
# 1. sliding-window inference
# ----------------------------------------------------------------------------------------------
@dataclass
class ChunkOutputs:
    """What the model said about every chunk, in bounded memory (see module docstring)."""

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
    """Run the model on every sliding window (batched); see the module docstring for what is kept.

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
            sources, acts = model(x)
            acts = acts.float().cpu().numpy()
            if activations is None:
                k, f = acts.shape[1], acts.shape[2]
                activations = np.zeros((len(starts), k, f), np.float32)
                if cache:
                    sep_sources = np.zeros((len(sep_idx), sources.shape[1], window), np.float16)
                    sep_scales = np.zeros((len(sep_idx), sources.shape[1]), np.float32)
            activations[idx] = np.nan_to_num(acts, nan=0.0)
            if encoder is not None:
                binary = activations[idx] > params.threshold
                clean = (binary & (binary.sum(axis=1, keepdims=True) == 1)).sum(axis=2)
                need = binary.any(axis=2) if source_embeddings == "all" else binary.any(axis=2) & (clean < min_frames)
                rows, locs = np.nonzero(need)
                if len(rows):
                    src_np = sources[torch.from_numpy(rows).to(sources.device), torch.from_numpy(locs).to(sources.device)].float().cpu().numpy()
                    waves = [src_np[i][_frames_to_samples(binary[r, k], frame_step, frame_size, window)]
                             for i, (r, k) in enumerate(zip(rows, locs))]
                    src_v.append(np.asarray(encoder(waves), np.float32))
                    src_c.append(idx[rows])
                    src_k.append(locs)
            if cache:
                keep = sep_pos[idx] >= 0
                if keep.any():
                    src = _finite(sources[torch.from_numpy(np.flatnonzero(keep)).to(sources.device)])
                    peak = src.abs().amax(dim=-1).clamp_min(1e-12)  # (b, K)
                    sep_sources[sep_pos[idx][keep]] = (src / peak[..., None]).half().cpu().numpy()
                    sep_scales[sep_pos[idx][keep]] = peak.cpu().numpy()
            del sources, acts
            _check(progress, should_stop, idx[-1] / len(starts), f"separated {idx[-1] + 1}/{len(starts)} windows")
    frame_offsets = np.round(starts / frame_step).astype(np.int64)
    extra = {}
    if src_v:
        vecs = np.concatenate(src_v)
        ok = np.all(np.isfinite(vecs), axis=1) & (np.linalg.norm(vecs, axis=1) > 0)
        extra = dict(src_chunk=np.concatenate(src_c)[ok], src_local=np.concatenate(src_k)[ok], src_vectors=vecs[ok])
    if return_sources and not cache:
        def recompute(chunk_starts: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(view[chunk_starts])).to(device)
                return _finite(model(x)[0]).cpu().numpy()

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


# ----------------------------------------------------------------------------------------------
# 2. embeddings
# ----------------------------------------------------------------------------------------------
@dataclass
class EmbeddingSet:
    chunk: np.ndarray       # (n,) chunk index of each embedding
    local: np.ndarray       # (n,) local speaker index
    vectors: np.ndarray     # (n, D) float32 L2-normalised
    active: np.ndarray      # (C, K) bool: local speaker active somewhere in the chunk
    threshold: float        # theta used to binarise


def _frames_to_samples(mask: np.ndarray, frame_step: int, frame_size: int, num_samples: int) -> np.ndarray:
    """Frame mask -> sample mask; frame f owns the frame_step samples around its centre."""
    offset = (frame_size - frame_step) // 2
    samples = np.zeros(num_samples, bool)
    rep = np.repeat(mask, frame_step)[: max(0, num_samples - offset)]
    samples[offset : offset + len(rep)] = rep
    return samples


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


# ----------------------------------------------------------------------------------------------
# 3. clustering + constrained assignment
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# 4. activations and discrete diarization
# ----------------------------------------------------------------------------------------------
def _window(n: int) -> np.ndarray:
    """Hann weights floored at 1e-3 so that an edge covered by one chunk only is still defined."""
    return np.maximum(np.hanning(n + 2)[1:-1], 1e-3).astype(np.float32)


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


# ----------------------------------------------------------------------------------------------
# 5. sources
# ----------------------------------------------------------------------------------------------
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

    See the module docstring: gain-aligned, Hann-weighted overlap-add normalised by the weights
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


# ----------------------------------------------------------------------------------------------
# result
# ----------------------------------------------------------------------------------------------
@dataclass
class SeparationResult:
    uri: str
    annotation: Annotation
    activations: SlidingWindowFeature  # (frames, speakers), column i = labels[i]
    sources: np.ndarray | None         # (samples, speakers) float32, column i = labels[i]
    labels: list[str]
    sample_rate: int
    duration: float
    timings: dict[str, float]
    params: dict = field(default_factory=dict)
    model: str = ""
    warnings: list[str] = field(default_factory=list)
    intervals: list = field(default_factory=list, repr=False)  # per label: (n, 2) active sample intervals

    def speech_time(self) -> dict[str, float]:
        return {label: float(self.annotation.label_duration(label)) for label in self.labels}

    def summary(self) -> dict[str, Any]:
        speech = self.speech_time()
        return {
            "uri": self.uri,
            "duration": round(self.duration, 3),
            "sample_rate": self.sample_rate,
            "num_speakers": len(self.labels),
            "speakers": [
                {"label": l, "speech": round(speech[l], 3), **({"wav": f"{self.uri}/{l}.wav"} if self.sources is not None else {})}
                for l in self.labels
            ],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "params": self.params,
            "model": self.model,
            "warnings": self.warnings,
        }

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write <uri>.rttm, <uri>/<label>.wav (float32; a track whose peak exceeds 1 is scaled to
        0.99 so that 16-bit conversions do not clip; the factor is in the JSON) and <uri>.json,
        written last so that its presence marks a complete output."""
        from core.annotation import write_rttm
        from core.fileio import atomic_write_json

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {"rttm": out_dir / f"{self.uri}.rttm"}
        write_rttm(self.annotation, paths["rttm"], uri=self.uri)
        summary = self.summary()
        if self.sources is not None:
            folder = out_dir / self.uri
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("SPEAKER_*.wav"):  # tracks of an earlier run with more speakers
                if re.fullmatch(r"SPEAKER_\d+\.wav", stale.name) and stale.stem not in self.labels:
                    stale.unlink()
            for i, label in enumerate(self.labels):
                track = self.sources[:, i]
                peak = float(np.max(np.abs(track))) if len(track) else 0.0
                gain = 0.99 / peak if peak > 1.0 else 1.0
                save_audio(folder / f"{label}.wav", track * np.float32(gain) if gain != 1.0 else track, self.sample_rate)
                paths[label] = folder / f"{label}.wav"
                summary["speakers"][i]["gain"] = round(gain, 6)
        paths["json"] = out_dir / f"{self.uri}.json"
        atomic_write_json(paths["json"], summary)
        return paths


# ----------------------------------------------------------------------------------------------
# the pipeline
# ----------------------------------------------------------------------------------------------
class Pipeline:
    """Joint diarization + separation of recordings of any length (see module docstring)."""

    def __init__(self, model="default", params: PipelineParams | None = None, device: str = "auto", encoder=None):
        import torch

        self.device = resolve_device(device)
        self.params = params if params is not None else PipelineParams.for_model(model)
        if isinstance(model, (str, Path)):
            from core.models.totatonet import load_model

            self.model_name = str(model)
            self.model = load_model(model, device=self.device)
        else:
            self.model_name = type(model).__name__
            self.model = model.to(self.device) if isinstance(model, torch.nn.Module) else model
        if hasattr(self.model, "eval"):
            self.model.eval()
        self._encoder = encoder

    @property
    def encoder(self):
        if self._encoder is None:
            from core.embeddings import get_encoder

            self._encoder = get_encoder(self.params.embedding, self.device)
        return self._encoder

    def load(self, audio, uri: str | None = None) -> tuple[np.ndarray, str]:
        if isinstance(audio, (str, Path)):
            return load_audio(audio, SAMPLE_RATE), uri or Path(audio).stem
        return prepare_waveform(np.asarray(audio), SAMPLE_RATE, SAMPLE_RATE, name=uri or "audio"), uri or "audio"

    def infer(self, waveform: np.ndarray, return_sources: bool = True, progress: Progress = None,
              should_stop: ShouldStop = None, source_embeddings: str = "missing") -> ChunkOutputs:
        cache = len(waveform) <= self.params.source_cache_minutes * 60 * SAMPLE_RATE
        return run_model(self.model, waveform, self.params, self.device, return_sources, progress, should_stop,
                         encoder=self.encoder, source_embeddings=source_embeddings, cache_sources=cache)

    def __call__(
        self,
        audio,
        uri: str | None = None,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        progress: Progress = None,
        should_stop: ShouldStop = None,
        return_sources: bool = True,
    ) -> SeparationResult:
        from core.clustering import check_speaker_bounds

        check_speaker_bounds(num_speakers, min_speakers, max_speakers)
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        waveform, uri = self.load(audio, uri)
        timings["load"] = time.perf_counter() - t0

        def sub(lo, hi):
            return None if progress is None else (lambda f, msg: progress(lo + (hi - lo) * f, msg))

        t = time.perf_counter()
        outputs = self.infer(waveform, return_sources, sub(0.0, 0.75), should_stop)
        timings["inference"] = time.perf_counter() - t
        result = self.from_outputs(outputs, uri, num_speakers, min_speakers, max_speakers, sub(0.75, 1.0), should_stop, timings)
        result.timings["total"] = time.perf_counter() - t0
        return result

    def from_outputs(
        self,
        outputs: ChunkOutputs,
        uri: str,
        num_speakers=None,
        min_speakers=None,
        max_speakers=None,
        progress: Progress = None,
        should_stop: ShouldStop = None,
        timings: dict | None = None,
        embeddings: EmbeddingSet | None = None,
    ) -> SeparationResult:
        """Stages 2-6 on cached model outputs (tuning re-uses this)."""
        p = self.params
        timings = {} if timings is None else timings
        caught: list[str] = []
        t = time.perf_counter()
        if embeddings is None:
            embeddings = extract_embeddings(
                outputs, p.threshold, self.encoder, p.min_embedding_duration,
                progress=None if progress is None else (lambda f, m: progress(0.6 * f, m)), should_stop=should_stop,
            )
        timings["embeddings"] = time.perf_counter() - t
        t = time.perf_counter()
        _check(progress, should_stop, 0.6, "clustering speakers")
        with warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            hard, n_global = assign_speakers(outputs, embeddings, p, num_speakers, min_speakers, max_speakers)
        for w in wlist:
            caught.append(str(w.message))
            warnings.warn(str(w.message), stacklevel=2)
        timings["clustering"] = time.perf_counter() - t
        t = time.perf_counter()
        _check(progress, should_stop, 0.7, "stitching activations")
        result = self.finish(outputs, hard, n_global, uri, progress, should_stop)
        timings["stitching"] = time.perf_counter() - t
        result.timings = timings
        result.warnings = caught
        return result

    def finish(self, outputs: ChunkOutputs, hard: np.ndarray, n_global: int, uri: str,
               progress: Progress = None, should_stop: ShouldStop = None, leakage_collar: float | None = None,
               return_sources: bool = True) -> SeparationResult:
        """Stages 4-6: stitched activations -> annotation -> stitched, leakage-free sources."""
        p = self.params
        sr = outputs.sample_rate
        fs, fsize = outputs.frame_step, outputs.frame_size
        act = stitch_activations(outputs, hard, n_global)
        # frames whose centre lies beyond the real end of the audio are cut off
        n_keep = max(1, min(len(act), int(math.ceil((outputs.num_samples - fsize / 2) / fs))))
        act = act[:n_keep]
        binary = binarize(act, p.threshold, fs / sr, p.min_duration_on, p.min_duration_off)
        alive = np.flatnonzero(binary.any(axis=0))
        first = [int(np.argmax(binary[:, g])) for g in alive]
        order = [int(g) for _, g in sorted(zip(first, alive))]
        labels = [speaker_label(i) for i in range(len(order))]
        columns = {g: i for i, g in enumerate(order)}
        duration = outputs.num_samples / sr
        annotation = Annotation(uri=uri)
        intervals = []
        for g, label in zip(order, labels):
            iv = frame_intervals(binary[:, g], fs, fsize, outputs.num_samples)
            intervals.append(iv)
            for a, b in iv:
                if b > a:
                    annotation[Segment(a / sr, b / sr)] = label
        features = SlidingWindowFeature(
            np.ascontiguousarray(act[:, order]) if order else np.zeros((len(act), 0), np.float32),
            SlidingWindow(start=0.0, duration=fsize / sr, step=fs / sr),
        )
        sources = None
        if outputs.has_sources and return_sources:
            _check(progress, should_stop, 0.8, "stitching sources")
            sub = None if progress is None else (lambda f, msg: progress(0.8 + 0.2 * f, msg))
            sources = stitch_sources(outputs, hard, columns, progress=sub, should_stop=should_stop)
            collar = p.leakage_collar if leakage_collar is None else leakage_collar
            if math.isfinite(collar):
                remove_leakage(sources, intervals, int(round(collar * sr)))
        _check(progress, should_stop, 1.0, "done")
        return SeparationResult(
            uri=uri, annotation=annotation, activations=features, sources=sources, labels=labels,
            sample_rate=sr, duration=duration, timings={}, params=p.to_dict(), model=self.model_name,
            intervals=intervals,
        )
