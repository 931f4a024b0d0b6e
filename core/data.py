"""Annotated recordings, manifests and the mixture-of-mixtures (MoM) pair sampler of PixIT.

A training example is a *pair* of chunks from the same recording whose speaker sets are disjoint
and whose union has at most K_max speakers (PixIT paper 2.1); the MoM is their sum.

Sampling (fixes the reference sampler's bugs, see research/reference-implementations.md):
- one numpy Generator per worker, seeded from (seed, rank, worker id, iteration): never the
  global RNG; plain (not cumulative) probabilities;
- chunk 1: file drawn with probability proportional to its annotated (UEM) duration, then a start
  uniform over all positions where the chunk fits inside one UEM region;
- chunk 2: same file, start uniform over the positions where the chunk fits inside one UEM region
  *and* touches none of chunk 1's speakers (gaps between their turns, the tail after the last turn
  and the head before the first one included, multi-region UEMs handled); accepted when the union
  has <= K_max speakers, else redrawn (bounded tries), then chunk 1 is redrawn, and as a last
  resort chunk 2 is silence (counted in `PairSampler.stats`);
- validation: a fixed list of pairs drawn once from its own seed, no augmentation, identical
  every epoch.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch
from pyannote.core import Annotation, Segment, Timeline

from core.annotation import is_blank, read_rttm, read_uem, uri_for
from core.audio import SAMPLE_RATE, audio_info, prepare_waveform
from core.errors import AnnotationError, AudioError, PixitError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


# ------------------------------------------------------------------------------------ recordings
@dataclass
class Recording:
    """One annotated recording: audio file, speaker turns, evaluated regions (UEM), duration (s).

    `sources`: folder with one WAV per speaker label (ground-truth sources, synthetic data only).
    """

    uri: str
    audio: Path
    annotation: Annotation
    uem: Timeline
    duration: float
    sources: Path | None = None
    sample_rate: int = SAMPLE_RATE  # of the file on disk (resampled to 16 kHz when read)

    @property
    def labels(self) -> list[str]:
        return sorted(self.annotation.labels())

    @property
    def annotated_duration(self) -> float:
        return float(sum(seg.duration for seg in self.uem))

    def source_path(self, label: str) -> Path:
        if self.sources is None:
            raise PixitError(f"{self.uri}: no ground-truth sources")
        return self.sources / f"{label}.wav"


def load_recording(
    audio: str | os.PathLike,
    rttm: str | os.PathLike,
    uem: str | os.PathLike | None = None,
    sources: str | os.PathLike | None = None,
) -> Recording:
    """Read and validate one recording: the annotation and UEM must fit inside the audio; an RTTM
    without SPEAKER lines must be empty (blank lines and comments only): a speech-free recording."""
    audio = Path(audio)
    if not audio.is_file():
        raise AudioError(f"{audio}: no such audio file")
    duration, sr, _ = audio_info(audio)
    if duration <= 0:
        raise AudioError(f"{audio.name}: the audio is empty")
    rttm = Path(rttm)
    if not rttm.is_file():
        raise AnnotationError(f"{rttm}: no such RTTM file")
    annotations = read_rttm(rttm, duration=duration)
    name = uri_for(audio.stem)
    if len(annotations) == 0:
        if not is_blank(rttm):  # any text file is not an annotation; an empty one says "no speech"
            raise AnnotationError(f"{rttm.name}: no SPEAKER line (an empty RTTM file marks a recording without speech)")
        uri, annotation = name, Annotation(uri=name)
    elif len(annotations) == 1:
        uri, annotation = next(iter(annotations.items()))
    elif name in annotations:
        uri, annotation = name, annotations[name]
    else:
        raise AnnotationError(f"{rttm.name}: holds {len(annotations)} recordings and none is named '{name}'")
    if uem is not None and str(uem) != "":
        uem = Path(uem)
        if not uem.is_file():
            raise AnnotationError(f"{uem}: no such UEM file")
        timelines = read_uem(uem, duration=duration)
        if uri in timelines:
            timeline = timelines[uri]
        elif len(timelines) == 1:
            timeline = next(iter(timelines.values()))
        else:
            raise AnnotationError(f"{uem.name}: no UEM entry for recording '{uri}'")
    else:
        timeline = Timeline([Segment(0.0, duration)], uri=uri)
    timeline = Timeline([Segment(max(0.0, s.start), min(duration, s.end)) for s in timeline.support()], uri=uri)
    source_dir = None
    if sources is not None and str(sources) != "":
        source_dir = Path(sources)
        if not source_dir.is_dir():
            raise PixitError(f"{source_dir}: no such sources folder")
        missing = [label for label in annotation.labels() if not (source_dir / f"{label}.wav").is_file()]
        if missing:
            raise PixitError(f"{source_dir}: no source WAV for speaker(s) {', '.join(sorted(missing))}")
    return Recording(uri=uri, audio=audio, annotation=annotation, uem=timeline, duration=duration,
                     sources=source_dir, sample_rate=sr)


def read_manifest(path: str | os.PathLike) -> list[Recording]:
    """Recordings listed by a CSV manifest or found in a folder.

    CSV: header `audio,rttm[,uem][,sources]`, one recording per row, paths relative to the
    manifest's folder (an empty uem cell = the whole file). Folder: `manifest.csv` inside it if
    present, else every `name.wav` with its `name.rttm` (+ `name.uem`, + `sources/name/`).
    Raises PixitError (one line naming the file and row) for anything unusable.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "manifest.csv").is_file():
            return read_manifest(path / "manifest.csv")
        return _read_folder(path)
    if not path.is_file():
        raise PixitError(f"{path}: no such manifest file or folder")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PixitError(f"{path.name}: not a text (CSV) file") from None
    rows = list(csv.reader(text.splitlines()))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise PixitError(f"{path.name}: empty manifest (expected a header `audio,rttm,uem`)")
    header = [cell.strip().lower() for cell in rows[0]]
    allowed = {"audio", "rttm", "uem", "sources"}
    if "audio" not in header or "rttm" not in header or not set(header) <= allowed or len(set(header)) != len(header):
        raise PixitError(f"{path.name}: bad header {','.join(rows[0])!r} (expected audio,rttm[,uem][,sources])")
    if len(rows) == 1:
        raise PixitError(f"{path.name}: the manifest lists no recordings")
    recordings, seen = [], {}
    for number, row in enumerate(rows[1:], start=2):
        where = f"{path.name} row {number}"
        if len(row) != len(header):
            raise PixitError(f"{where}: expected {len(header)} columns, got {len(row)}")
        cells = {name: cell.strip() for name, cell in zip(header, row)}
        resolve = lambda cell: (path.parent / cell) if cell else None  # noqa: E731
        if not cells["audio"] or not cells["rttm"]:
            raise PixitError(f"{where}: the audio and rttm cells must not be empty")
        try:
            recording = load_recording(resolve(cells["audio"]), resolve(cells["rttm"]),
                                       resolve(cells.get("uem", "")), resolve(cells.get("sources", "")))
        except PixitError as exc:
            raise PixitError(f"{where}: {exc}") from None
        if recording.uri in seen:
            raise PixitError(f"{where}: recording '{recording.uri}' already listed on row {seen[recording.uri]}")
        seen[recording.uri] = number
        recordings.append(recording)
    return recordings


def _read_folder(folder: Path) -> list[Recording]:
    audios = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not audios:
        raise PixitError(f"{folder}: no audio files (name.wav + name.rttm) and no manifest.csv")
    recordings = []
    for audio in audios:
        rttm = audio.with_suffix(".rttm")
        if not rttm.is_file():
            raise PixitError(f"{audio.name}: no matching {rttm.name} in {folder}")
        uem = audio.with_suffix(".uem")
        sources = folder / "sources" / audio.stem
        recordings.append(load_recording(audio, rttm, uem if uem.is_file() else None,
                                         sources if sources.is_dir() else None))
    return recordings


def check_audio(recordings: list[Recording], what: str, block_seconds: float = 60.0) -> None:
    """Read every recording once, a block at a time: unreadable, NaN / infinite or digitally silent
    audio is a one-line AudioError naming the file. Training on such a file gives NaN losses (or
    learns nothing) instead of an error, so `train` checks before its first step."""
    for rec in recordings:
        where = f"{what}: {rec.audio.name}"
        peak, done = 0.0, 0
        try:
            with sf.SoundFile(str(rec.audio)) as handle:
                block = max(1, int(block_seconds * handle.samplerate))
                for data in handle.blocks(blocksize=block, dtype="float32", always_2d=True):
                    bad = ~np.isfinite(data)
                    if bad.any():
                        at = (done + int(np.argmax(bad.any(axis=1)))) / handle.samplerate
                        raise AudioError(f"{where}: NaN or infinite samples (first at {at:.2f} s)")
                    peak = max(peak, float(np.abs(data).max(initial=0.0)))
                    done += len(data)
        except AudioError:
            raise
        except Exception as exc:  # soundfile / libsndfile errors, also in the middle of a file
            raise AudioError(f"{where}: cannot read audio ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from None
        if peak < SILENCE_PEAK:
            raise AudioError(f"{where}: the audio is silent (peak {peak:.1e}); nothing to learn from it")


SILENCE_PEAK = 1e-6  # -120 dBFS: below what 24-bit audio can hold; anything quieter is digital silence


# -------------------------------------------------------------------------------------- audio io
def read_chunk(path: Path, start: float, duration: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`duration` seconds of mono float32 audio at `sample_rate` from `start`, read partially.

    Only the needed frames are read (soundfile start/stop); other rates are resampled. The result
    has exactly round(duration * sample_rate) samples (zero-padded past the end of the file).
    """
    num = int(round(duration * sample_rate))
    try:
        with sf.SoundFile(str(path)) as handle:
            sr = handle.samplerate
            first = int(round(start * sr))
            handle.seek(min(first, handle.frames))
            data = handle.read(int(round(duration * sr)) + (0 if sr == sample_rate else 2),
                               dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{Path(path).name}: cannot read audio ({exc})") from None
    if data.shape[0] == 0:
        return np.zeros(num, dtype=np.float32)
    wave = prepare_waveform(data, sr, sample_rate, name=Path(path).name) if (sr != sample_rate or data.shape[1] > 1) else data[:, 0]
    out = np.zeros(num, dtype=np.float32)
    out[: min(num, wave.shape[0])] = wave[:num]
    return out


# ------------------------------------------------------------------------------------- frames
@dataclass(frozen=True)
class FrameGrid:
    """The model's diarization frame grid: frame f covers samples [f*step, f*step + size)."""

    num_frames: int  # frames per chunk
    step: int  # samples
    size: int  # samples
    sample_rate: int = SAMPLE_RATE

    @classmethod
    def from_model(cls, model, chunk_duration: float) -> "FrameGrid":
        """Read num_frames / frame_step / frame_size off a ToTaToNet for chunks of `chunk_duration` s."""
        sr = int(getattr(getattr(model, "config", None), "sample_rate", SAMPLE_RATE))
        num_samples = int(round(chunk_duration * sr))
        return cls(int(model.num_frames(num_samples)), int(model.frame_step), int(model.frame_size), sr)

    def frame_range(self, start: float, end: float) -> tuple[int, int]:
        """Frames [lo, hi) whose centre lies in [start, end) (times in s relative to the chunk)."""
        half = self.size / 2
        lo = math.ceil((start * self.sample_rate - half) / self.step - 1e-9)
        hi = math.ceil((end * self.sample_rate - half) / self.step - 1e-9)
        return max(0, lo), min(self.num_frames, hi)


# ------------------------------------------------------------------------------------ intervals
def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals as sorted disjoint (starts, ends) (touching intervals are merged)."""
    if len(starts) == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    running_end = np.maximum.accumulate(e)
    new_group = np.ones(len(s), dtype=bool)
    new_group[1:] = s[1:] > running_end[:-1]
    group = np.cumsum(new_group) - 1
    merged_starts = s[new_group]
    merged_ends = np.zeros(len(merged_starts))
    np.maximum.at(merged_ends, group, e)
    return merged_starts, merged_ends


def _subtract(regions: list[tuple[float, float]], starts: np.ndarray, ends: np.ndarray) -> list[tuple[float, float]]:
    """Parts of the (sorted, disjoint) regions not covered by the (sorted, disjoint) intervals."""
    free, j = [], 0
    for a, b in regions:
        cursor = a
        while j < len(starts) and ends[j] <= a:
            j += 1
        k = j
        while k < len(starts) and starts[k] < b:
            if starts[k] > cursor:
                free.append((cursor, min(starts[k], b)))
            cursor = max(cursor, ends[k])
            k += 1
        if cursor < b:
            free.append((cursor, b))
    return free


def _remove_open(ranges: list[tuple[float, float]], x: float, y: float) -> list[tuple[float, float]]:
    """Closed ranges [lo, hi] minus the open interval (x, y) (zero-width ranges are kept)."""
    out = []
    for lo, hi in ranges:
        if lo <= x:
            out.append((lo, min(hi, x)))
        if y <= hi:
            out.append((max(lo, y), hi))
    return out


@dataclass
class _FileIndex:
    recording: Recording
    regions: list[tuple[float, float]]  # UEM regions long enough for a chunk
    labels: list[str]
    seg_starts: list[np.ndarray]  # per label, merged turns
    seg_ends: list[np.ndarray]
    cache: dict = field(default_factory=dict)  # frozenset(label ids) -> start ranges for chunk 2


@dataclass(frozen=True)
class Chunk:
    """A chunk of one recording with the speakers (label indices of the file) active in it."""

    file: int
    start: float
    speakers: tuple[int, ...]  # most talkative first, at most K_max
    silent: bool = False  # fallback: zeros instead of audio


@dataclass(frozen=True)
class Pair:
    first: Chunk
    second: Chunk


class PairSampler:
    """Draws speaker-disjoint same-file chunk pairs and turns them into tensors.

    `grid` is the model's frame grid for chunks of `chunk_duration` seconds (FrameGrid.from_model).
    """

    def __init__(
        self,
        recordings: list[Recording],
        grid: FrameGrid,
        chunk_duration: float = 5.0,
        max_speakers: int = 3,
        max_tries: int = 20,
        with_sources: bool = False,
    ) -> None:
        if not recordings:
            raise PixitError("no recordings to sample from")
        self.recordings = recordings
        self.grid = grid
        self.chunk_duration = float(chunk_duration)
        self.max_speakers = int(max_speakers)
        self.max_tries = int(max_tries)
        self.with_sources = with_sources
        self.stats = {"pairs": 0, "chunk2_retries": 0, "chunk1_redraws": 0, "silent_fallback": 0}
        self.files: list[_FileIndex] = []
        weights = []
        for rec in recordings:
            regions = [(s.start, s.end) for s in rec.uem.support() if s.duration >= self.chunk_duration - 1e-6]
            labels = rec.labels
            starts, ends = [], []
            for label in labels:
                segs = list(rec.annotation.label_timeline(label).support())
                s, e = _merge(np.array([x.start for x in segs], float), np.array([x.end for x in segs], float))
                starts.append(s)
                ends.append(e)
            self.files.append(_FileIndex(rec, regions, labels, starts, ends))
            weights.append(sum(b - a for a, b in regions))
        weights = np.asarray(weights, dtype=float)
        if weights.sum() <= 0:
            raise PixitError(
                f"no annotated (UEM) region is at least {self.chunk_duration:g} s long: use shorter chunks or longer recordings"
            )
        self.file_probs = weights / weights.sum()
        if with_sources:
            lacking = [rec.uri for rec, w in zip(recordings, weights) if w > 0 and rec.sources is None]
            if lacking:
                raise PixitError(f"the supervised loss needs ground-truth sources, but {lacking[0]} has none"
                                 f"{f' (and {len(lacking) - 1} more)' if len(lacking) > 1 else ''}")

    # ----------------------------------------------------------------------------- sampling
    def speakers_in(self, file: int, start: float, end: float) -> list[tuple[int, float]]:
        """(label index, speech seconds inside [start, end)) for the speakers active in the span."""
        idx = self.files[file]
        active = []
        for k, (s, e) in enumerate(zip(idx.seg_starts, idx.seg_ends)):
            i = int(np.searchsorted(e, start, side="right"))
            j = int(np.searchsorted(s, end, side="left"))
            if j > i:
                total = float(np.sum(np.minimum(e[i:j], end) - np.maximum(s[i:j], start)))
                if total > 0:
                    active.append((k, total))
        return active

    def _chunk(self, file: int, start: float) -> tuple[Chunk, int]:
        """The chunk and its true number of speakers (before keeping the K_max most talkative)."""
        active = self.speakers_in(file, start, start + self.chunk_duration)
        active.sort(key=lambda kv: (-kv[1], kv[0]))
        return Chunk(file, start, tuple(k for k, _ in active[: self.max_speakers])), len(active)

    def _uniform_start(self, ranges: list[tuple[float, float]], rng: np.random.Generator) -> float:
        """A start uniform over the union of [lo, hi] ranges (zero-width ranges still possible)."""
        lengths = np.array([hi - lo for lo, hi in ranges]) + 1e-6
        r = int(rng.choice(len(ranges), p=lengths / lengths.sum()))
        lo, hi = ranges[r]
        return float(lo + rng.random() * (hi - lo))

    def _second_ranges(self, file: int, speakers: tuple[int, ...]) -> list[tuple[float, float]]:
        """Start ranges for a chunk inside one UEM region that touches none of `speakers`."""
        idx = self.files[file]
        key = frozenset(speakers)
        if key not in idx.cache:
            if speakers:
                s = np.concatenate([idx.seg_starts[k] for k in speakers])
                e = np.concatenate([idx.seg_ends[k] for k in speakers])
                s, e = _merge(s, e)
            else:
                s, e = np.zeros(0), np.zeros(0)
            free = _subtract(idx.regions, s, e)
            ranges = [(a, b - self.chunk_duration) for a, b in free if b - a >= self.chunk_duration - 1e-9]
            if len(idx.cache) > 4096:
                idx.cache.clear()
            idx.cache[key] = ranges
        return idx.cache[key]

    def sample_pair(self, rng: np.random.Generator) -> Pair:
        """One pair: same file, disjoint speakers, union of at most K_max speakers (see module doc)."""
        self.stats["pairs"] += 1
        first = None
        for attempt in range(self.max_tries):
            if attempt:
                self.stats["chunk1_redraws"] += 1
            file = int(rng.choice(len(self.files), p=self.file_probs))
            start = self._uniform_start([(a, b - self.chunk_duration) for a, b in self.files[file].regions], rng)
            chunk1, count1 = self._chunk(file, start)
            if first is None or count1 < first[1]:
                first = (chunk1, count1)
            if count1 > self.max_speakers:
                continue
            # chunk 2 touches none of chunk 1's speakers and does not overlap chunk 1 in time
            ranges = _remove_open(self._second_ranges(file, chunk1.speakers),
                                  start - self.chunk_duration, start + self.chunk_duration)
            if not ranges:
                continue
            for retry in range(max(1, self.max_tries // 4)):
                if retry:
                    self.stats["chunk2_retries"] += 1
                chunk2, count2 = self._chunk(file, self._uniform_start(ranges, rng))
                if count1 + count2 <= self.max_speakers:
                    return Pair(chunk1, chunk2)
        # last resort: the least crowded first chunk with silence
        self.stats["silent_fallback"] += 1
        chunk1 = first[0]
        return Pair(chunk1, Chunk(chunk1.file, chunk1.start, (), silent=True))

    # ------------------------------------------------------------------------------ tensors
    def _targets(self, chunk: Chunk) -> np.ndarray:
        y = np.zeros((self.max_speakers, self.grid.num_frames), dtype=np.float32)
        idx = self.files[chunk.file]
        end = chunk.start + self.chunk_duration
        for column, k in enumerate(chunk.speakers):
            s, e = idx.seg_starts[k], idx.seg_ends[k]
            i = int(np.searchsorted(e, chunk.start, side="right"))
            j = int(np.searchsorted(s, end, side="left"))
            for a, b in zip(s[i:j], e[i:j]):
                lo, hi = self.grid.frame_range(max(a, chunk.start) - chunk.start, min(b, end) - chunk.start)
                y[column, lo:hi] = 1.0
        return y

    def _audio(self, chunk: Chunk) -> np.ndarray:
        num = int(round(self.chunk_duration * self.grid.sample_rate))
        if chunk.silent:
            return np.zeros(num, dtype=np.float32)
        return read_chunk(self.files[chunk.file].recording.audio, chunk.start, self.chunk_duration, self.grid.sample_rate)

    def _sources(self, chunk: Chunk) -> list[np.ndarray]:
        if chunk.silent:
            return []
        idx = self.files[chunk.file]
        return [read_chunk(idx.recording.source_path(idx.labels[k]), chunk.start, self.chunk_duration, self.grid.sample_rate)
                for k in chunk.speakers]

    def make_item(self, pair: Pair) -> dict[str, torch.Tensor]:
        """Tensors of one pair: mix1/mix2 (T,), y1/y2/y_mom (K, F) [, src_mom (K, T), src_valid (K,)].

        y_mom stacks the speaker columns of chunk 1 then chunk 2 (disjoint by construction).
        """
        y1, y2 = self._targets(pair.first), self._targets(pair.second)
        n1, n2 = len(pair.first.speakers), len(pair.second.speakers)
        y_mom = np.zeros_like(y1)
        y_mom[:n1] = y1[:n1]
        y_mom[n1 : n1 + n2] = y2[: self.max_speakers - n1][:n2]
        item = {
            "mix1": torch.from_numpy(self._audio(pair.first)),
            "mix2": torch.from_numpy(self._audio(pair.second)),
            "y1": torch.from_numpy(y1),
            "y2": torch.from_numpy(y2),
            "y_mom": torch.from_numpy(y_mom),
        }
        if self.with_sources:
            num = item["mix1"].shape[0]
            src = np.zeros((self.max_speakers, num), dtype=np.float32)
            found = (self._sources(pair.first) + self._sources(pair.second))[: self.max_speakers]
            for column, wave in enumerate(found):
                src[column] = wave
            valid = np.zeros(self.max_speakers, dtype=bool)
            valid[: len(found)] = [np.any(w != 0) for w in found]
            item["src_mom"] = torch.from_numpy(src)
            item["src_valid"] = torch.from_numpy(valid)
        return item


# ------------------------------------------------------------------------------------ datasets
def worker_rng(seed: int, rank: int = 0, worker: int = 0, iteration: int = 0) -> np.random.Generator:
    """An independent Generator for (seed, rank, worker, iteration): no global RNG anywhere."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(rank), int(worker), int(iteration)])))


class TrainPairs(torch.utils.data.IterableDataset):
    """Endless stream of training pairs; each DataLoader worker (and rank) has its own Generator.

    Each new iterator in the same process (next epoch, with persistent workers or num_workers=0)
    continues with a fresh, still deterministic, stream. `length` only tells the DataLoader (and
    Lightning) how many pairs make an epoch.
    """

    def __init__(self, sampler: PairSampler, seed: int = 0, rank: int = 0, length: int | None = None) -> None:
        super().__init__()
        self.sampler, self.seed, self.rank = sampler, seed, rank
        self.length = length  # pairs per epoch (the stream itself is endless)
        self._iterations = 0

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("TrainPairs without a length is endless")
        return int(self.length)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        rng = worker_rng(self.seed, self.rank, worker, self._iterations)
        self._iterations += 1
        while True:
            yield self.sampler.make_item(self.sampler.sample_pair(rng))


class ReplayMix:
    """A pair sampler that draws from `replay` with probability `fraction`, else from `main`: replaying
    data like a model's original training data while it learns a few minutes of corrections keeps it
    from forgetting what it was good at."""

    def __init__(self, main: PairSampler, replay: PairSampler, fraction: float) -> None:
        self.main, self.replay, self.fraction = main, replay, float(fraction)

    def sample_pair(self, rng: np.random.Generator) -> tuple[bool, Pair]:
        from_replay = bool(rng.random() < self.fraction)
        return from_replay, (self.replay if from_replay else self.main).sample_pair(rng)

    def make_item(self, tagged: tuple[bool, Pair]) -> dict[str, torch.Tensor]:
        from_replay, pair = tagged
        return (self.replay if from_replay else self.main).make_item(pair)


class FixedPairs(torch.utils.data.Dataset):
    """A fixed list of pairs (validation): drawn once from `seed`, no augmentation, same every epoch."""

    def __init__(self, sampler: PairSampler, num_pairs: int, seed: int = 0) -> None:
        super().__init__()
        self.sampler = sampler
        rng = worker_rng(seed, 0, 0, 10**6)  # a stream of its own, never shared with training
        self.pairs = [sampler.sample_pair(rng) for _ in range(int(num_pairs))]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.sampler.make_item(self.pairs[index])
