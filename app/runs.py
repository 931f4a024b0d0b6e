"""Model runs of a meeting (the "Run model" panel's behaviour, no gradio): the cached pipelines,
running the joint model, storing its result as a run (activations, separated tracks, unsure places)
and making it the model output the user corrects."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app import editing as E
from app.editing import Doc
from app.history import History
from app.figures import Activations
from app.insight import unsure_places
from app.workspace import Meeting
from core.errors import ModelError, PixitError

if TYPE_CHECKING:
    from app.session import Session

log = logging.getLogger("pixit.app")

_PIPELINES: dict[str, object] = {}
_PIPE_LOCK = threading.Lock()


def get_pipeline(model: str, device: str = "auto", params: dict | None = None):
    """A cached core.pipeline.Pipeline per model folder (loading a model is the slow part)."""
    from core.pipeline import Pipeline, PipelineParams

    with _PIPE_LOCK:
        key = f"{model}|{device}|{json.dumps(params, sort_keys=True)}"
        if key not in _PIPELINES:
            if len(_PIPELINES) >= 3:
                _PIPELINES.pop(next(iter(_PIPELINES)))
            tuned = PipelineParams.for_model(model) if params is None else PipelineParams(**params)
            _PIPELINES[key] = Pipeline(model, params=tuned, device=device)
        return _PIPELINES[key]


@dataclass
class RunData:
    info: dict
    acts: Activations | None
    sources: np.ndarray | None  # memmap (samples, K)
    unsure: list


def load_run(meeting: Meeting, rid: str) -> RunData:
    """A stored run, its arrays memory-mapped."""
    d = meeting.run_dir(rid)
    info = json.loads((d / "run.json").read_text())
    acts = None
    if (d / "activations.npy").is_file():
        acts = Activations(np.load(d / "activations.npy", mmap_mode="r"), info["act_start"], info["act_step"],
                           info["labels"], info.get("threshold", 0.5))
    sources = np.load(d / "sources.npy", mmap_mode="r") if (d / "sources.npy").is_file() else None
    unsure = json.loads((d / "unsure.json").read_text()) if (d / "unsure.json").is_file() else []
    return RunData(info, acts, sources, unsure)


def model_doc(meeting: Meeting, run: RunData | None) -> Doc:
    """The model output of `run` as a document (an empty one before any run)."""
    if run is None:
        return E.new_doc(meeting.duration)
    segs = json.loads((meeting.run_dir(run.info["id"]) / "segments.json").read_text())
    labels = run.info.get("labels", [])
    return E.new_doc(meeting.duration, segs, speakers=labels, model_labels=labels)


def run_model(S: Session, model: str, model_label: str, num_speakers=None, min_speakers=None, max_speakers=None,
              progress=None, should_stop=None) -> str:
    """Run the joint model on the open meeting; stores the run and makes it the model output."""
    from core.audio import load_audio

    meeting = S.meeting
    if meeting is None:
        raise PixitError("open a meeting first (upload one or click 'Open demo meeting')")
    progress = progress or (lambda f, m="": None)
    progress(0.0, "loading the model")
    try:
        pipe = get_pipeline(model, S.settings.device, S.settings.params)
    except PixitError:
        raise
    except Exception as exc:  # a broken model folder must not crash the app
        raise ModelError(f"cannot load model {model_label}: {type(exc).__name__}: {exc}") from None
    waveform = load_audio(meeting.audio)
    t = time.time()
    result = pipe(waveform, uri=meeting.uri, num_speakers=num_speakers, min_speakers=min_speakers,
                  max_speakers=max_speakers, progress=lambda f, m="": progress(0.05 + 0.85 * f, m or "separating"),
                  should_stop=should_stop, return_sources=True)
    progress(0.92, "saving the result")
    threshold = float(getattr(getattr(pipe, "params", None), "threshold", 0.5))
    msg = store_result(S, result, model, model_label, threshold, time.time() - t,
                       {"num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers})
    progress(1.0, "done")
    return msg


def store_result(S: Session, result, model: str, model_label: str, threshold: float = 0.5, seconds: float = 0.0,
                 extra: dict | None = None) -> str:
    """Save a SeparationResult as a run of the open meeting and make it the model output."""
    meeting = S.meeting
    rid = f"r{time.strftime('%Y%m%d-%H%M%S')}-{np.random.default_rng().integers(1 << 20):05x}"
    d = meeting.path / "runs" / rid
    d.mkdir(parents=True)
    labels = [str(x) for x in result.labels]
    segs = [[round(float(s.start), 3), round(float(s.end), 3), str(lab)]
            for s, _, lab in result.annotation.itertracks(yield_label=True)]
    (d / "segments.json").write_text(json.dumps(segs))
    act = result.activations
    data = np.asarray(act.data, np.float32)
    if data.ndim == 1:
        data = data[:, None]
    np.save(d / "activations.npy", data)
    sw = act.sliding_window
    act_start = float(sw.start + sw.duration / 2)
    sources = None
    if result.sources is not None:
        sources = np.asarray(result.sources, np.float32)
        np.save(d / "sources.npy", sources)
    places = unsure_places(data, act_start, float(sw.step), threshold, segs, sources, 16000, labels)
    (d / "unsure.json").write_text(json.dumps(places))
    info = {"id": rid, "model": model, "model_label": model_label, "labels": labels, "created": time.time(),
            "act_start": act_start, "act_step": float(sw.step), "threshold": threshold,
            "seconds": seconds, **(extra or {})}
    (d / "run.json").write_text(json.dumps(info))
    with S.lock:
        edited = S.history is not None and S.history.doc.segments != S.history.original.segments
        meeting.meta["run"] = rid
        meeting.save_meta()
        S.run = load_run(meeting, rid)
        S.cache = {}
        original = model_doc(meeting, S.run)
        if edited:
            S.history.original = original
            # the separated tracks / curves now come from this run: map its labels to themselves
            doc = S.history.doc
            S.history.doc = E._with(doc, aliases=tuple((m, m) for m in labels))
            note = " Your edits were kept; **Reset to model** shows the new output."
        else:
            reviewed = S.history.doc.reviewed if S.history else ()
            S.history = History(E._with(original, reviewed=reviewed), original)
            note = ""
        S.autosave()
    der = reference_der(S)
    msg = (f"Model **{model_label}** found {len(labels)} speaker(s), {len(segs)} turns in "
           f"{seconds:.1f} s.{note}")
    if result.speaker_note:
        msg += f" **Fewer speakers than asked:** {result.speaker_note}."
    if der:
        msg += f" DER against the demo's reference RTTM: **{100 * der['der']:.1f}%**."
    S.message = msg
    return msg


def aliases_by_overlap(model: Doc, turns: list[tuple[float, float, str]]) -> tuple[tuple[str, str], ...]:
    """Each model speaker named after the speaker of `turns` (an imported RTTM) whose turns it
    overlaps most, one to one (Hungarian): after an import the activation curves, their colours
    and the separated tracks follow the lane they match. A model speaker that matches nobody keeps
    its own name (it then has no lane)."""
    from scipy.optimize import linear_sum_assignment

    labels = [m for m, _ in model.aliases]
    names = sorted({spk for *_, spk in turns})
    overlap = np.zeros((len(labels), len(names)))
    for i, m in enumerate(labels):
        a = np.array([(s.start, s.end) for s in model.segments if s.speaker == m]).reshape(-1, 2)
        for j, name in enumerate(names):
            b = np.array([(s, e) for s, e, spk in turns if spk == name]).reshape(-1, 2)
            inter = np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0])
            overlap[i, j] = np.clip(inter, 0, None).sum()
    rows, cols = linear_sum_assignment(-overlap)
    match = {labels[i]: names[j] for i, j in zip(rows, cols) if overlap[i, j] > 0}
    return tuple((m, match.get(m, m)) for m in labels)


def reference_der(S: Session) -> dict | None:
    """DER of the model output against a shipped reference RTTM (the demo), if any."""
    from app.exports import to_annotation

    m = S.meeting
    if m is None or not m.meta.get("reference") or S.history is None:
        return None
    try:
        from core.annotation import read_rttm_single
        from core.metrics import diarization_error

        ref = read_rttm_single(m.path / m.meta["reference"])
        return diarization_error(ref, to_annotation(S.history.original, m.uri))
    except Exception as exc:  # scoring is a bonus, never a failure
        log.warning("reference DER failed: %s", exc)
        return None
