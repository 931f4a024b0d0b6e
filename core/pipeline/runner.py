"""The Pipeline class: loads a model once and runs the stages in order on each recording.

`from_outputs` (stages 2-6) and `finish` (stages 4-6) are separate so that tuning can re-run the
cheap stages on cached model outputs.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from pathlib import Path

import numpy as np
from pyannote.core import Annotation, Segment, SlidingWindow, SlidingWindowFeature

from core.annotation import uri_for
from core.audio import SAMPLE_RATE, load_audio, prepare_waveform
from core.errors import PixitError
from core.pipeline.activations import binarize, frame_intervals, stitch_activations
from core.pipeline.assignment import assign_speakers
from core.pipeline.local_embeddings import EmbeddingSet, extract_embeddings
from core.pipeline.params import PipelineParams
from core.pipeline.progress import Progress, ShouldStop, _check
from core.pipeline.result import SeparationResult
from core.pipeline.sources import remove_leakage, stitch_sources
from core.pipeline.speech import apply_speech, speech_frames
from core.pipeline.windows import ChunkOutputs, run_model


def speaker_label(i: int) -> str:
    return f"SPEAKER_{i:02d}"


def speaker_shortfall(wanted: int | None, clusters: int, found: int, threshold: float, min_duration_on: float) -> str:
    """Why fewer speakers came out than were asked for ('' when not): the clustering could form
    fewer groups (too few embeddings), or a cluster's stitched activations never stayed above the
    threshold long enough to make a turn (the model heard that voice as one with the others)."""
    if not wanted or found >= wanted:
        return ""
    reasons = []
    if clusters < wanted:
        reasons.append(f"only {clusters} speaker cluster(s) could be formed (too little speech of one person alone "
                       "to tell voices apart)")
    if found < clusters:
        reasons.append(f"{clusters - found} of the {clusters} speaker clusters never had speech above the activation "
                       f"threshold {threshold:g} for {min_duration_on:g} s (the model heard that voice as one "
                       "with the others)")
    return f"{wanted} speakers asked for, {found} found: " + "; ".join(reasons)


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


class Pipeline:
    """Joint diarization + separation of recordings of any length (see the core.pipeline docstring)."""

    def __init__(self, model="default", params: PipelineParams | None = None, device: str = "auto", encoder=None,
                 speakers="auto"):
        """`speakers`: known speakers (core.speakers.SpeakerProfiles, or a speakers.json path) whose names the
        output uses; "auto": the model folder's speakers.json if it has one; None: none."""
        import torch

        self.device = resolve_device(device)
        self.params = params if params is not None else PipelineParams.for_model(model)
        if isinstance(model, (str, Path)):
            from core.models import load_model

            self.model_name = str(model)
            self.model = load_model(model, device=self.device)
        else:
            self.model_name = type(model).__name__
            self.model = model.to(self.device) if isinstance(model, torch.nn.Module) else model
        if hasattr(self.model, "eval"):
            self.model.eval()
        self._encoder = encoder
        self.notes: list[str] = []  # said once per recording in SeparationResult.warnings
        self.speakers = self._known_speakers(model, speakers)
        self._fit_batch()

    def _known_speakers(self, model, speakers):
        from core.speakers import SpeakerProfiles, profiles_of_model

        if speakers is None:
            return None
        profiles = (profiles_of_model(model) if isinstance(speakers, str) and speakers == "auto"
                    else speakers if isinstance(speakers, SpeakerProfiles) else SpeakerProfiles.load(speakers))
        if profiles is not None and profiles.embedding != self.params.embedding:
            self.notes.append(f"speaker profiles ignored: made with the {profiles.embedding} embedding, "
                              f"the pipeline uses {self.params.embedding}")
            return None
        return profiles

    def _fit_batch(self) -> None:
        """A batch of windows that would not fit in free memory is made smaller (same results, slower),
        and the result says so."""
        from core.memory import fit_inference_batch, inference_estimate
        from core.models.totatonet import ToTaToNet

        if not isinstance(self.model, ToTaToNet) or not (self.device == "cpu" or self.device.startswith("cuda")):
            return
        window = int(round(self.params.window * self.model.config.sample_rate))
        estimate = inference_estimate(self.model, self.params.batch_size, window, self.device)
        batch, note = fit_inference_batch(estimate, self.params.batch_size, self.device)
        if note:
            self.params = dataclasses.replace(self.params, batch_size=batch)
            self.notes.append(note)

    @property
    def encoder(self):
        if self._encoder is None:
            from core.embeddings import get_encoder

            self._encoder = get_encoder(self.params.embedding, self.device)
        return self._encoder

    def load(self, audio, uri: str | None = None) -> tuple[np.ndarray, str]:
        if isinstance(audio, (str, Path)):
            return load_audio(audio, SAMPLE_RATE), uri or uri_for(Path(audio).stem)
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
        if isinstance(audio, (str, Path)):
            result.file = Path(audio).name
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
        caught: list[str] = list(self.notes)
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
        names = None
        if self.speakers is not None:
            from core.speakers import name_speakers

            names = name_speakers(embeddings, hard, n_global, self.speakers)
        result = self.finish(outputs, hard, n_global, uri, progress, should_stop, names=names)
        timings["stitching"] = time.perf_counter() - t
        result.timings = timings
        result.speaker_note = speaker_shortfall(num_speakers or min_speakers, n_global, len(result.labels),
                                                p.threshold, p.min_duration_on)
        result.warnings = caught + ([result.speaker_note] if result.speaker_note else [])
        return result

    @staticmethod
    def _labels(order: list[int], names: dict[int, str]) -> list[str]:
        """Known speakers by name, the others SPEAKER_00, SPEAKER_01 ... in order of appearance."""
        from core.speakers import label_for

        taken = {label_for(n) for n in names.values()}
        labels, unknown = [], 0
        for g in order:
            if g in names:
                labels.append(label_for(names[g]))
                continue
            while speaker_label(unknown) in taken:
                unknown += 1
            labels.append(speaker_label(unknown))
            unknown += 1
        return labels

    def finish(self, outputs: ChunkOutputs, hard: np.ndarray, n_global: int, uri: str,
               progress: Progress = None, should_stop: ShouldStop = None, leakage_collar: float | None = None,
               return_sources: bool = True, names: dict[int, str] | None = None) -> SeparationResult:
        """Stages 4-6: stitched activations -> annotation -> stitched, leakage-free sources.
        `names`: global speaker -> known speaker's name (core.speakers.name_speakers)."""
        p = self.params
        sr = outputs.sample_rate
        fs, fsize = outputs.frame_step, outputs.frame_size
        act = stitch_activations(outputs, hard, n_global)
        # frames whose centre lies beyond the real end of the audio are cut off
        n_keep = max(1, min(len(act), int(math.ceil((outputs.num_samples - fsize / 2) / fs))))
        act = act[:n_keep]
        binary = binarize(act, p.threshold, fs / sr, p.min_duration_on, p.min_duration_off)
        if p.vad != "none":
            binary = apply_speech(binary, act, speech_frames(outputs, len(act), p), p.vad_gate)
        alive = np.flatnonzero(binary.any(axis=0))
        first = [int(np.argmax(binary[:, g])) for g in alive]
        order = [int(g) for _, g in sorted(zip(first, alive))]
        labels = self._labels(order, names or {})
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
