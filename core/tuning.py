"""Search of the pipeline thresholds on a dev set: theta (activation threshold), delta (clustering
threshold), min_duration_off, and Delta t (leakage collar).

The model runs ONCE per dev file (`run_model`, with separated-source embeddings for every active
local speaker so that any theta can be evaluated). Speaker embeddings are computed once per
(file, theta) and cached; every (theta, delta) pair then costs only clustering + stitching of
frame-level activations + DER, so a full grid is cheap.

With `steps`, the whole search is repeated at each sliding step (the model runs once per file and
step) and the largest step whose DER stays within `max_der_increase` of the best step is kept: the
speed / DER trade-off measured per model. Every step's outputs are kept until the choice.

Objectives:
- theta, delta, min_duration_off minimise the total DER (summed errors / summed reference speech,
  within each file's UEM). Leakage removal does not change the diarization, so DER cannot tune
  Delta t.
- Delta t maximises the mean SI-SDR of the stitched sources against the ground-truth sources when
  the dev recordings have them (synthetic corpora), or minimises cpWER when `asr` (a function
  waveform -> text) and reference `transcripts` ({uri: {speaker: text}}) are given. Otherwise it
  keeps its current value (reported in `notes`).

Memory: every dev file's waveform (4 bytes per sample) and frame-level activations (about 54 MB
per hour) are kept. Separated sources (needed only for the leakage collar) are cached as float16
(12 bytes per sample at K_max = 3 with half-window separation chunks, 11.5 MB per minute) for the
first dev files only, up to `source_cache_minutes` of audio in total (default 20: about 230 MB;
a 3-hour dev set cached whole would hold 2.1 GB), the budget `separate` allows
one recording; the other files' sources are recomputed once, when the collar is tuned on them
(the model runs again on their separation chunks, like `separate` on a long recording).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import Cancelled, PixitError
from core.pipeline import Pipeline, PipelineParams, assign_speakers, extract_embeddings, remove_leakage, run_model

DEFAULT_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
DEFAULT_CLUSTERING = tuple(round(x, 2) for x in np.arange(0.3, 1.45, 0.1))
DEFAULT_MIN_OFF = (0.0, 0.1, 0.25, 0.5)
DEFAULT_COLLARS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)

__all__ = ["tune", "TuneResult"]


@dataclass
class TuneResult:
    params: PipelineParams
    der: float                       # total DER with the tuned parameters
    baseline_der: float              # total DER with the starting parameters
    history: list[dict] = field(default_factory=list)
    collar_scores: dict[float, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        self.params.save(path, extra={"metrics": {
            "der": self.der, "baseline_der": self.baseline_der,
            "collar_scores": {str(k): v for k, v in self.collar_scores.items()}, "notes": self.notes,
        }})


@dataclass
class _File:
    uri: str
    recording: object
    outputs: object
    embeddings: dict = field(default_factory=dict)  # theta -> EmbeddingSet


def tune(
    dev: str | Path | list,
    model="default",
    params: PipelineParams | None = None,
    device: str = "auto",
    thresholds=DEFAULT_THRESHOLDS,
    clustering_thresholds=DEFAULT_CLUSTERING,
    min_durations_off=DEFAULT_MIN_OFF,
    collars=DEFAULT_COLLARS,
    vad_options=(),
    steps=(),
    max_der_increase: float = 0.01,
    asr: Callable[[np.ndarray], str] | None = None,
    transcripts: dict[str, dict[str, str]] | None = None,
    progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    encoder=None,
) -> TuneResult:
    """Tune theta / delta / min_duration_off (DER) and the leakage collar (SI-SDR or cpWER).

    `vad_options` ("none", "silero", "silero+gate"): the optional VAD stage (core.pipeline.speech),
    tried on the best diarization settings and kept when it lowers the DER.
    `steps`: sliding steps (s) to try besides the starting one, each with its own search (the model
    runs once per file and step, min_cluster_size scaled with the number of windows); the largest
    step whose best DER is at most `max_der_increase` (a fraction: 0.01 = 1 point) above the best
    of all steps is kept, since fewer windows mean proportionally less model time."""
    from core.audio import SAMPLE_RATE
    from core.data import read_manifest

    t_start = time.perf_counter()
    recordings = read_manifest(dev) if not isinstance(dev, list) else dev
    if not recordings:
        raise PixitError(f"{dev}: the dev manifest holds no recordings")
    base = params if params is not None else PipelineParams()
    thresholds = sorted(set(float(t) for t in thresholds) | {base.threshold})
    clustering_thresholds = sorted(set(float(d) for d in clustering_thresholds) | {base.clustering_threshold})
    candidates = sorted(set(float(s) for s in steps) | {base.step})
    if any(s <= 0 or s > base.window for s in candidates):
        raise PixitError(f"sliding steps must be in (0, window = {base.window:g} s], got {candidates}")
    pipeline = Pipeline(model, base, device=device, encoder=encoder)

    def report(fraction, message):
        if should_stop is not None and should_stop():
            raise Cancelled("tuning stopped by the user")
        if progress is not None:
            progress(min(1.0, max(0.0, fraction)), message)

    want_sources = bool(collars) and (any(r.sources is not None for r in recordings) or (asr is not None and transcripts))
    share = 0.85 / len(candidates)
    searches: dict[float, _Search] = {}
    for k, step in enumerate(candidates):
        start = _at_step(base, step)
        lo = k * share
        files, model_seconds = _run_model_on_files(pipeline, recordings, dataclasses.replace(start, threshold=min(thresholds)),
                                                   want_sources, SAMPLE_RATE, should_stop,
                                                   lambda f, m: report(lo + 0.6 * share * f, m))
        searches[step] = _search(pipeline, files, start, thresholds, clustering_thresholds, min_durations_off,
                                 vad_options, should_stop, lambda f, m: report(lo + share * (0.6 + 0.4 * f), m))
        searches[step].model_seconds = model_seconds
        if len(candidates) > 1:
            for row in searches[step].history:
                row["step"] = step
    timings = {"inference": sum(s.model_seconds for s in searches.values())}
    timings["search"] = time.perf_counter() - t_start - timings["inference"]

    notes: list[str] = []
    lowest = min(s.der for s in searches.values())
    chosen = max(step for step, s in searches.items() if s.der <= lowest + max_der_increase + 1e-9)
    if len(candidates) > 1:
        table = ", ".join(f"{step:g} s: DER {100 * s.der:.2f}% (model {s.model_seconds:.1f} s)" for step, s in searches.items())
        points = 100 * max_der_increase
        notes.append(f"sliding step {chosen:g} s kept, the largest within {points:g} DER point{'' if points == 1 else 's'} "
                     f"of the best step ({table})")
    search = searches[chosen]
    files, best, best_der = search.files, search.best, search.der
    history = [row for s in searches.values() for row in s.history]
    baseline = searches[base.step].baseline
    searches.clear()  # the other steps' model outputs are no longer needed

    # 2. the leakage collar, on sources stitched once per file with the best diarization settings
    collar_scores: dict[float, float] = {}
    if want_sources:
        report(0.87, "tuning the leakage collar")
        collar_scores = _tune_collar(pipeline, best, files, collars, asr, transcripts, notes)
        if collar_scores:
            goal = max if asr is None else min
            best = dataclasses.replace(best, leakage_collar=float(goal(collar_scores, key=collar_scores.get)))
    else:
        notes.append("leakage_collar kept: the dev set has no ground-truth sources (and no ASR + transcripts)")
    pipeline.params = best
    timings["total"] = time.perf_counter() - t_start
    report(1.0, f"DER {100 * baseline:.2f}% -> {100 * best_der:.2f}%")
    return TuneResult(best, best_der, baseline, history, collar_scores, notes, timings)


def _at_step(params: PipelineParams, step: float) -> PipelineParams:
    """The parameters at another sliding step. A speaker's embeddings come one per window, so
    min_cluster_size is scaled with the number of windows (the same seconds of speech per cluster)."""
    scaled = max(1, int(round(params.min_cluster_size * params.step / step)))
    return dataclasses.replace(params, step=step, min_cluster_size=scaled)


@dataclass
class _Search:
    files: list[_File]
    best: PipelineParams
    der: float
    baseline: float
    history: list[dict]
    model_seconds: float = 0.0


def _run_model_on_files(pipeline, recordings, params: PipelineParams, want_sources: bool, sample_rate: int,
                        should_stop, report) -> tuple[list[_File], float]:
    """The model once per file (at the lowest threshold tried, with source embeddings for every
    active local speaker, so that any theta can be evaluated), and the seconds it took.
    Separated sources are cached for at most `source_cache_minutes` of dev audio in all."""
    from core.audio import load_audio

    t = time.perf_counter()
    files: list[_File] = []
    cache_left = params.source_cache_minutes * 60 * sample_rate
    for i, rec in enumerate(recordings):
        report(i / len(recordings), f"running the model on {rec.uri} (step {params.step:g} s)")
        wav = load_audio(rec.audio)
        cache = want_sources and len(wav) <= cache_left
        cache_left -= len(wav) if cache else 0
        outputs = run_model(pipeline.model, wav, params, pipeline.device, return_sources=want_sources,
                            should_stop=should_stop, encoder=pipeline.encoder, source_embeddings="all",
                            cache_sources=cache)
        files.append(_File(rec.uri, rec, outputs))
    return files, time.perf_counter() - t


def _embeddings_for(pipeline, f: _File, theta: float, should_stop=None):
    """Speaker embeddings of a file at threshold theta, computed once."""
    if theta not in f.embeddings:
        f.embeddings[theta] = extract_embeddings(f.outputs, theta, pipeline.encoder, pipeline.params.min_embedding_duration,
                                                 should_stop=should_stop)
    return f.embeddings[theta]


def _search(pipeline, files: list[_File], base: PipelineParams, thresholds, clustering_thresholds, min_durations_off,
            vad_options, should_stop, report) -> _Search:
    """Grid search of theta x delta, then min_duration_off, then the VAD options, on cached outputs."""
    import warnings

    from core.metrics import DERAccumulator, diarization_error

    def evaluate(p: PipelineParams) -> float:
        pipeline.params = p
        acc = DERAccumulator()
        for f in files:
            emb = _embeddings_for(pipeline, f, p.threshold, should_stop)
            hard, n = assign_speakers(f.outputs, emb, p)
            result = pipeline.finish(f.outputs, hard, n, f.uri, return_sources=False)
            acc.add(f.uri, diarization_error(f.recording.annotation, result.annotation, uem=f.recording.uem))
        return acc.total()["der"]

    history: list[dict] = []

    def consider(p: PipelineParams, best_der: float, best: PipelineParams, **extra) -> tuple[float, PipelineParams]:
        der = evaluate(p)
        history.append({"threshold": p.threshold, "clustering_threshold": p.clustering_threshold,
                        "min_duration_off": p.min_duration_off, **extra, "der": der})
        return (der, p) if der < best_der - 1e-9 else (best_der, best)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        baseline = evaluate(base)
        best_der, best = baseline, base
        grid = [(th, d) for th in thresholds for d in clustering_thresholds]
        for j, (th, d) in enumerate(grid):
            report(j / len(grid), f"step={base.step:g} theta={th:.2f} delta={d:.2f}")
            best_der, best = consider(dataclasses.replace(base, threshold=th, clustering_threshold=d), best_der, best)
        for m in min_durations_off:
            best_der, best = consider(dataclasses.replace(best, min_duration_off=float(m)), best_der, best)
        for option in vad_options:
            p = dataclasses.replace(best, vad=option.split("+")[0], vad_gate=option.endswith("+gate"))
            best_der, best = consider(p, best_der, best, vad=option)
    return _Search(files, best, best_der, baseline, history)


def _tune_collar(pipeline, best, files, collars, asr, transcripts, notes) -> dict[float, float]:
    """Mean SI-SDR (dB, higher is better) or cpWER (lower is better) for each collar."""
    from core.audio import load_audio
    from core.metrics import cpwer, separation_scores

    pipeline.params = best
    sums = {float(c): [] for c in collars}
    for f in files:
        if not f.outputs.has_sources:
            continue
        emb = _embeddings_for(pipeline, f, best.threshold)
        hard, n = assign_speakers(f.outputs, emb, best)
        result = pipeline.finish(f.outputs, hard, n, f.uri, leakage_collar=math.inf)
        if result.sources is None or not result.labels:
            continue
        intervals = result.intervals
        refs = None
        if asr is None:
            rec = f.recording
            labels = rec.labels
            if rec.sources is None or not labels:  # no ground truth, or speech-free: nothing to score
                continue
            try:
                refs = np.stack([load_audio(rec.source_path(label)) for label in labels], axis=1)
            except PixitError as exc:
                notes.append(f"{f.uri}: ground-truth sources unreadable ({exc})")
                continue
        elif f.uri not in (transcripts or {}):
            continue
        for c in sums:
            sources = result.sources.copy()
            remove_leakage(sources, intervals, int(round(c * result.sample_rate)))
            if refs is not None:
                scores = separation_scores(sources, refs)
                # an unmatched reference counts as a failed track (0 dB) so that fewer tracks do not win
                values = [p["si_sdr"] for p in scores["pairs"]] + [0.0] * len(scores["unmatched_references"])
                sums[c].append(float(np.mean(values)))
            else:
                hyp = {label: asr(sources[:, i]) for i, label in enumerate(result.labels)}
                sums[c].append(cpwer(transcripts[f.uri], hyp)["error_rate"])
    return {c: float(np.mean(v)) for c, v in sums.items() if v}
