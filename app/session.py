"""The workbench's behaviour, without gradio: one `Session` per browser (or API client).

A Session owns a Workspace folder, the open meeting, its edit history, its model run (activation
curves, separated tracks as memory-mapped arrays) and the view window. main.py only wires gradio
components to these methods, so everything here is testable and benchmarkable directly.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from app import editing as E
from app.access import html_text, safe_filename, unique_filenames
from app.editing import Doc, EditError, History
from app.figures import Activations, View, timeline_figure, waveform_window, MAX_POINTS
from app.insight import next_place, unsure_places
from app.lane import Lane
from app.models import served_model, served_models
from app.workspace import PEAK_BLOCK, Meeting, Workspace, file_url
from core.errors import AudioError, ModelError, PixitError
from core.hub import parse_hub_id

log = logging.getLogger("pixit.app")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")
MIN_AUDIO_SECONDS = 1.0
MAX_CLIP_SECONDS = 600.0
REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "assets" / "demo"


@dataclass
class Settings:
    """Server-wide settings (from `pixit app` options)."""

    root: Path
    model: str = "default"
    max_upload_mb: float = 200.0
    max_audio_hours: float = 3.0
    device: str = "auto"
    host: str = "127.0.0.1"
    params: dict | None = None  # core.pipeline.PipelineParams fields (None: those tuned for the model, its params.json)
    train_overrides: dict | None = None  # extra core.training.TrainConfig fields for "Retrain"
    demo_dir: Path | None = None  # where the demo meeting (a wav + its rttm) lives; None: assets/demo
    model_dirs: tuple = ()  # folders whose model subfolders users may pick or type by name (--models)
    max_retrain_steps: int = 1000  # one session cannot hold the model slot longer than this
    max_sessions: int = 200  # sessions held in memory at once (app/registry.py)
    session_idle_minutes: float = 30.0  # an unused session's memory is freed after this (files stay)
    max_events_per_session: int = 8  # requests of one session waiting or running (app/middleware.py)
    max_jobs_per_session: int = 1  # model jobs (run, retrain, track export) of one session at once


# ------------------------------------------------------------------ models (shared by all sessions)
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


def hub_model(hub_id: str) -> tuple[str, str]:
    """(local snapshot or checkpoint, hub id) of a Hugging Face Hub model, fetched into the server's
    hub cache with the server's login; only ever a hub id, never a server path of the same shape."""
    from core.models import resolve_model

    source = resolve_model(hub_id, hub_only=True)
    return str(source.path), source.label


def default_model_available(model: str) -> bool:
    try:
        from core.models import resolve_model

        return resolve_model(model) is not None
    except Exception:
        return False


# ------------------------------------------------------------------ background work with progress
class Job:
    """Runs fn(progress, should_stop) in a thread; the caller polls `updates()` (a generator), so a
    gradio generator handler can yield progress while the work runs, and Stop sets the flag the work
    checks (the worker really stops: training and inference poll should_stop)."""

    def __init__(self, fn: Callable, stop: threading.Event):
        self.stop = stop
        self.frac, self.msg = 0.0, "starting"
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()

        def progress(frac: float, msg: str = "") -> None:
            self.frac, self.msg = float(min(max(frac, 0.0), 1.0)), msg or self.msg

        def target():
            try:
                self.result = fn(progress, self.stop.is_set)
            except BaseException as exc:  # reported to the caller
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def updates(self, every: float = 0.25):
        while not self.done.wait(every):
            yield self.frac, self.msg
        yield self.frac, self.msg

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.result

    def cancel(self, wait: float = 60.0) -> None:
        self.stop.set()
        self.thread.join(wait)


# ------------------------------------------------------------------ the session
@dataclass
class RunData:
    info: dict
    acts: Activations | None
    sources: np.ndarray | None  # memmap (samples, K)
    unsure: list


class Session:
    def __init__(self, settings: Settings, sid: str):
        self.settings = settings
        self.ws = Workspace(settings.root, sid)
        self.sid = sid
        self.lock = Lane()  # one request at a time, in arrival order (app/lane.py)
        self.stop = threading.Event()
        self.busy: str | None = None
        self.meeting: Meeting | None = None
        self.history: History | None = None
        self.run: RunData | None = None
        self.t0, self.t1 = 0.0, 0.0
        self.selected: int | None = None
        self.cursor: float = 0.0
        self.message = "Start here: click **Open demo meeting** (left) or upload a recording."
        self._peaks = None
        self._wave_cache: dict = {}
        self.retrain_table: list[list] = []
        self.retrain_note = ""
        mid = self.ws.state().get("meeting")
        if mid:
            try:
                self.open_meeting(mid)
            except PixitError:
                pass

    def close(self) -> None:
        """Free what the session holds in memory (app/registry.py drops idle sessions) and delete
        its temporary clips; the workspace folder stays for its owner."""
        self.meeting, self.history, self.run = None, None, None
        self._peaks, self._wave_cache = None, {}
        self.ws.drop_clips()

    # -------------------------------------------------------------- meetings
    @property
    def doc(self) -> Doc:
        if self.history is None:
            raise PixitError("open a meeting first (upload one or click 'Open demo meeting')")
        return self.history.doc

    def open_meeting(self, mid: str) -> None:
        with self.lock:
            meeting = self.ws.meeting(mid)
            self.meeting = meeting
            self._peaks = meeting.peaks()
            self._wave_cache = {}
            self.run = None
            rid = meeting.meta.get("run")
            if rid:
                try:
                    self.run = self._load_run(meeting, rid)
                except (OSError, ValueError, PixitError) as exc:
                    log.warning("run %s of %s unreadable: %s", rid, mid, exc)
            original = self._model_doc(meeting)
            doc, _ = meeting.load_doc()
            if doc is None:
                doc = original
            self.history = History(doc, original)
            self.t0, self.t1 = 0.0, meeting.duration
            self.selected, self.cursor = None, 0.0
            self.ws.set_state(meeting=mid)
            self.message = f"Opened **{meeting.name}** ({fmt_time(meeting.duration)})."

    def _model_doc(self, meeting: Meeting) -> Doc:
        if self.run is None:
            return E.new_doc(meeting.duration)
        segs = json.loads((meeting.run_dir(self.run.info["id"]) / "segments.json").read_text())
        labels = self.run.info.get("labels", [])
        return E.new_doc(meeting.duration, segs, speakers=labels, model_labels=labels)

    def _load_run(self, meeting: Meeting, rid: str) -> RunData:
        d = meeting.run_dir(rid)
        info = json.loads((d / "run.json").read_text())
        acts = None
        if (d / "activations.npy").is_file():
            acts = Activations(np.load(d / "activations.npy", mmap_mode="r"), info["act_start"], info["act_step"],
                               info["labels"], info.get("threshold", 0.5))
        sources = np.load(d / "sources.npy", mmap_mode="r") if (d / "sources.npy").is_file() else None
        unsure = json.loads((d / "unsure.json").read_text()) if (d / "unsure.json").is_file() else []
        return RunData(info, acts, sources, unsure)

    def add_audio(self, path: str | Path, name: str | None = None, source: str = "upload") -> Meeting:
        """Validate and store an uploaded recording; opens it. Raises AudioError with the reason."""
        from core.audio import load_audio

        path = Path(path)
        shown = name or path.name
        suffix = Path(str(shown)).suffix.lower() or path.suffix.lower()
        if suffix not in AUDIO_SUFFIXES:
            raise AudioError(f"{Path(shown).name}: unsupported file type '{suffix or '?'}' "
                             f"(use {', '.join(s.lstrip('.') for s in AUDIO_SUFFIXES)})")
        size = path.stat().st_size
        if size > self.settings.max_upload_mb * 1e6:
            raise AudioError(f"{Path(shown).name}: {size / 1e6:.0f} MB is over the {self.settings.max_upload_mb:.0f} MB upload limit")
        try:
            import soundfile as sf
            info = sf.info(str(path))
            if info.frames / max(info.samplerate, 1) > self.settings.max_audio_hours * 3600:
                raise AudioError(f"{Path(shown).name}: longer than {self.settings.max_audio_hours:g} h")
        except AudioError:
            raise
        except Exception:
            pass  # load_audio gives the real reason
        try:
            waveform = load_audio(path)
        except AudioError as exc:
            raise AudioError(str(exc).replace(path.name, Path(shown).name, 1)) from None
        duration = len(waveform) / 16000
        if duration < MIN_AUDIO_SECONDS:
            raise AudioError(f"{Path(shown).name}: {duration:.2f} s is too short for the model (need at least {MIN_AUDIO_SECONDS:g} s)")
        if float(np.abs(waveform).max()) < 1e-5:
            raise AudioError(f"{Path(shown).name}: the recording is silent (all samples are zero)")
        with self.lock:
            meeting = self.ws.add_meeting(waveform, shown, source)
            self.open_meeting(meeting.id)
            self.message = f"Loaded **{meeting.name}** ({fmt_time(meeting.duration)}). Press **Run model**."
            return meeting

    def open_demo(self) -> Meeting:
        wavs = sorted(Path(self.settings.demo_dir or DEMO_DIR).glob("*.wav"))
        if not wavs:
            raise PixitError("the demo meeting is not installed (assets/demo/ has no .wav)")
        for m in self.ws.meetings():  # open the demo once per workspace
            if m.meta.get("source") == "demo":
                self.open_meeting(m.id)
                self.message = f"Opened the demo meeting **{m.name}**. Press **Run model** (its reference RTTM is used for scoring)."
                return m
        self.add_audio(wavs[0], wavs[0].name, source="demo")
        meeting = self.meeting
        rttm = wavs[0].with_suffix(".rttm")
        if rttm.is_file():
            shutil.copyfile(rttm, meeting.path / "reference.rttm")
            meeting.meta["reference"] = "reference.rttm"
            meeting.save_meta()
        self.message = f"Opened the demo meeting **{meeting.name}** ({fmt_time(meeting.duration)}). Press **Run model**."
        return meeting

    # -------------------------------------------------------------- model runs
    @staticmethod
    def startup_choices(settings: Settings) -> list[tuple[str, str]]:
        """The model list before a session is known. Values are names, never server paths."""
        model = settings.model or "default"
        shown = "default (shipped)" if model == "default" else f"startup model ({Path(model).name})"
        from core.models.resolve import cached_models

        return ([(shown, "startup")] + [(f"{p.name} (server models)", f"models:{p.name}") for p in served_models(settings)]
                + [(f"{m.name} (Hugging Face cache)", f"hub:{m.name}") for m in cached_models()])

    def model_choices(self) -> list[tuple[str, str]]:
        choices = self.startup_choices(self.settings)
        for v in self.ws.versions():
            choices.append((f"{v['id']} (retrained {time.strftime('%H:%M', time.localtime(v['created']))})", f"version:{v['id']}"))
        return choices

    def resolve_model(self, choice: str | None, typed: str | None = None) -> tuple[str, str]:
        """(model folder or name, human label) for a dropdown choice, or for a model folder typed
        by name. Only the startup model, this session's versions and the folders of the server's
        --models directories can be named: a typed server path is refused in the same words
        whether or not it exists (the box is no probe of the server's disk)."""
        if typed and str(typed).strip():
            found = served_model(self.settings, str(typed).strip())
            if found is None and parse_hub_id(str(typed).strip()) is not None:
                return hub_model(str(typed).strip())
            if found is None:
                raise ModelError("not one of this server's model folders: pick a model in the list, or type the "
                                 "name of a folder the server offers (pixit app --models DIR) or a Hugging Face "
                                 "Hub id (org/name[@revision])")
            return str(found), found.name
        choice = str(choice or "startup")
        if choice == "startup":
            model = self.settings.model or "default"
            return model, "default" if model == "default" else Path(model).name
        if choice.startswith("version:"):
            v = self.ws.version(choice.split(":", 1)[1])
            return v["path"], v["id"]
        if choice.startswith("models:") and (found := served_model(self.settings, choice[7:])) is not None:
            return str(found), found.name
        if choice.startswith("hub:"):
            return hub_model(choice[4:])
        raise ModelError("unknown model choice: pick one in the list")

    def share(self, model: str, model_label: str, repo_id: str, private: bool) -> str:
        """Push `model` (a version, usually) to the Hub with a generated model card, as `pixit push` does;
        the token is the server's (HF_TOKEN or its stored login), never typed in the app."""
        from core.models.sharing import push_model

        parent = next((v.get("parent") for v in self.ws.versions() if v["id"] == model_label), None)
        url = push_model(model, str(repo_id or "").strip(), private=bool(private), parent=parent,
                         notes=[f"shared from the PixIT Workbench app (model {model_label})"])
        self.message = f"Shared **{model_label}** as **{repo_id}** on the Hugging Face Hub: {url}"
        return self.message

    def run_model(self, model: str, model_label: str, num_speakers=None, min_speakers=None, max_speakers=None,
                  progress=None, should_stop=None) -> str:
        """Run the joint model on the open meeting; stores the run and makes it the model output."""
        from core.audio import load_audio

        meeting = self.meeting
        if meeting is None:
            raise PixitError("open a meeting first (upload one or click 'Open demo meeting')")
        progress = progress or (lambda f, m="": None)
        progress(0.0, "loading the model")
        try:
            pipe = get_pipeline(model, self.settings.device, self.settings.params)
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
        msg = self.store_result(result, model, model_label, threshold, time.time() - t,
                                {"num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers})
        progress(1.0, "done")
        return msg

    def store_result(self, result, model: str, model_label: str, threshold: float = 0.5, seconds: float = 0.0,
                     extra: dict | None = None) -> str:
        """Save a SeparationResult as a run of the open meeting and make it the model output."""
        meeting = self.meeting
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
        with self.lock:
            edited = self.history is not None and self.history.doc.segments != self.history.original.segments
            meeting.meta["run"] = rid
            meeting.save_meta()
            self.run = self._load_run(meeting, rid)
            self._wave_cache = {}
            original = self._model_doc(meeting)
            if edited:
                self.history.original = original
                # the separated tracks / curves now come from this run: map its labels to themselves
                doc = self.history.doc
                self.history.doc = E._with(doc, aliases=tuple((m, m) for m in labels))
                note = " Your edits were kept; **Reset to model output** shows the new output."
            else:
                reviewed = self.history.doc.reviewed if self.history else ()
                self.history = History(E._with(original, reviewed=reviewed), original)
                note = ""
            meeting.save_doc(self.history.doc, rid)
        der = self.reference_der()
        msg = (f"Model **{model_label}** found {len(labels)} speaker(s), {len(segs)} turns in "
               f"{seconds:.1f} s.{note}")
        if der:
            msg += f" DER against the demo's reference RTTM: **{100 * der['der']:.1f}%**."
        self.message = msg
        return msg

    def reference_der(self) -> dict | None:
        """DER of the model output against a shipped reference RTTM (the demo), if any."""
        m = self.meeting
        if m is None or not m.meta.get("reference") or self.history is None:
            return None
        try:
            from core.annotation import read_rttm_single
            from core.metrics import diarization_error

            ref = read_rttm_single(m.path / m.meta["reference"])
            return diarization_error(ref, to_annotation(self.history.original, m.uri))
        except Exception as exc:  # scoring is a bonus, never a failure
            log.warning("reference DER failed: %s", exc)
            return None

    # -------------------------------------------------------------- edits
    def edit(self, name: str, *args) -> str:
        """Apply one edit operation by name; autosave; returns a status line. Raises EditError."""
        with self.lock:
            doc = self.doc
            h = self.history
            sel = self.selected
            if name == "add":
                new, sel = E.add_segment(doc, *args)
                label = "add segment"
            elif name in ("delete", "move", "split", "set_speaker", "shift"):
                if sel is None or not doc.has(sel):
                    raise EditError("select a segment first (click it on the timeline or in the table)")
                if name == "delete":
                    new = E.delete_segment(doc, sel)
                    nxt = E.next_segment(new, None, doc.get(sel).start)
                    sel = nxt.id if nxt else None
                    label = "delete segment"
                elif name == "move":
                    new = E.move_segment(doc, sel, *args)
                    label = "move/resize segment"
                elif name == "shift":
                    new = E.shift_segment(doc, sel, *args)
                    label = "move segment"
                elif name == "split":
                    at = args[0] if args and args[0] is not None else self.cursor
                    new, _ = E.split_segment(doc, sel, at)
                    label = "split segment"
                else:
                    spk = args[0]
                    if isinstance(spk, int):
                        k = spk
                        spk = doc.speaker_of_index(k)
                        if spk is None:
                            if k != len(doc.speakers) + 1:
                                raise EditError(f"there is no speaker {k} (speakers 1-{len(doc.speakers)}; "
                                                f"{len(doc.speakers) + 1} creates a new one)")
                            spk = E.new_speaker_name(doc)
                    new = E.set_speaker(doc, sel, spk)
                    label = f"assign to {spk}"
            elif name == "rename":
                new = E.rename_speaker(doc, *args)
                label = f"rename {args[0]} to {args[1]}"
            elif name == "merge":
                new = E.merge_speakers(doc, *args)
                label = f"merge {args[1]} into {args[0]}"
            elif name == "add_speaker":
                new = E.add_speaker(doc, *args)
                label = f"add speaker {args[0]}"
            elif name == "review":
                new = E.mark_reviewed(doc, *args)
                label = "mark reviewed"
            elif name == "unreview":
                new = E.unmark_reviewed(doc, *args)
                label = "unmark reviewed"
            elif name == "import":
                new = args[0]
                label = "import RTTM"
            else:
                raise EditError(f"unknown edit {name}")
            h.apply(new, label)
            if sel is not None and not new.has(sel):
                sel = None
            self.selected = sel
            self._autosave()
            self.message = f"Done: {label}. (Saved.)"
            return self.message

    def undo(self) -> str:
        with self.lock:
            if self.history is None:
                raise PixitError("open a meeting first")
            label = self.history.undo()
            self._fix_selection()
            self._autosave()
            self.message = f"Undid: {label}."
            return self.message

    def redo(self) -> str:
        with self.lock:
            if self.history is None:
                raise PixitError("open a meeting first")
            label = self.history.redo()
            self._fix_selection()
            self._autosave()
            self.message = f"Redid: {label}."
            return self.message

    def reset(self) -> str:
        with self.lock:
            if self.history is None:
                raise PixitError("open a meeting first")
            self.history.reset()
            self._fix_selection()
            self._autosave()
            self.message = "Reset to the model output (undo brings your edits back)."
            return self.message

    def _fix_selection(self):
        if self.selected is not None and not self.doc.has(self.selected):
            self.selected = None

    def _autosave(self):
        rid = self.run.info["id"] if self.run else None
        self.meeting.save_doc(self.history.doc, rid)

    def import_rttm(self, path: str | Path) -> str:
        """Replace the segments with an RTTM's (undoable). A malformed file changes nothing."""
        from core.annotation import read_rttm

        m = self.meeting
        if m is None:
            raise PixitError("open a meeting first, then import an RTTM for it")
        anns = read_rttm(path, duration=m.duration)
        if not anns:
            raise PixitError(f"{Path(path).name}: no SPEAKER lines")
        ann = anns.get(m.uri) or (next(iter(anns.values())) if len(anns) == 1 else None)
        if ann is None:
            raise PixitError(f"{Path(path).name}: holds {len(anns)} recordings and none is '{m.uri}'")
        segs = [(s.start, s.end, lab) for s, _, lab in ann.itertracks(yield_label=True)]
        doc = self.doc
        try:
            labels = sorted({E.check_speaker(lab) for *_, lab in segs})
        except EditError as exc:
            raise EditError(f"{Path(path).name}: {exc}") from None
        new = E._with(E.new_doc(m.duration, segs, speakers=labels), reviewed=doc.reviewed,
                      next_id=doc.next_id + len(segs) + 1, aliases=doc.aliases)
        # keep ids unique across undo: renumber from next_id
        base = doc.next_id
        new = E._with(new, segments=tuple(E.Seg(base + i, s.start, s.end, s.speaker) for i, s in enumerate(new.segments)))
        self.edit("import", new)
        self.message = f"Imported {len(segs)} turns of {len(labels)} speaker(s) from the RTTM (undo restores the previous segments)."
        return self.message

    # -------------------------------------------------------------- selection / navigation / view
    def select(self, seg_id) -> E.Seg:
        with self.lock:
            seg = self.doc.get(seg_id)
            self.selected = seg.id
            self.cursor = seg.start
            self._ensure_visible(seg.start, seg.end)
            self.message = f"Selected {seg.speaker} {seg.start:.2f}-{seg.end:.2f} s."
            return seg

    def step(self, direction: int) -> E.Seg | None:
        with self.lock:
            seg = E.next_segment(self.doc, self.selected, self.cursor, direction)
            if seg is None:
                raise PixitError("there are no segments yet")
            return self.select(seg.id)

    def next_unsure(self, direction: int = 1):
        with self.lock:
            if self.run is None:
                raise PixitError("run the model first: unsure places come from its output")
            if not self.run.unsure:
                raise PixitError("the model flagged no unsure place in this meeting")
            p = next_place(self.run.unsure, self.cursor, direction)
            a, b, kind, detail = p
            self.cursor = a
            span = min(max(20.0, (b - a) + 10.0), 120.0)  # zoom in around it: details matter here
            self.set_view(a - 5.0, a - 5.0 + span)
            hit = E.segment_at(self.doc, (a + b) / 2)
            self.selected = hit.id if hit else None
            idx = self.run.unsure.index(p) + 1
            self.message = f"Unsure place {idx}/{len(self.run.unsure)}: **{kind}** at {a:.2f}-{b:.2f} s ({detail})."
            return p

    def _ensure_visible(self, a, b, pad=2.0):
        if a < self.t0 or b > self.t1:
            span = max(self.t1 - self.t0, (b - a) + 2 * pad, 10.0)
            span = min(span, 120.0) if (b - a) < 60 else span
            self.set_view(a - pad, a - pad + span)

    def set_view(self, t0, t1) -> None:
        d = self.meeting.duration if self.meeting else 0.0
        t0, t1 = float(t0), float(t1)
        span = min(max(t1 - t0, 1.0), d) if d else 1.0
        t0 = min(max(0.0, t0), max(0.0, d - span))
        self.t0, self.t1 = t0, t0 + span

    def zoom(self, factor: float) -> None:
        c = (self.t0 + self.t1) / 2
        half = (self.t1 - self.t0) * factor / 2
        self.set_view(c - half, c + half)

    def pan(self, fraction: float) -> None:
        span = self.t1 - self.t0
        self.set_view(self.t0 + fraction * span, self.t1 + fraction * span)

    def whole(self) -> None:
        self.set_view(0.0, self.meeting.duration if self.meeting else 0.0)

    def set_cursor(self, t) -> None:
        if self.meeting is None:
            return
        self.cursor = float(min(max(0.0, float(t)), self.meeting.duration))

    # -------------------------------------------------------------- rendering
    def _raw(self, a: int, b: int) -> np.ndarray:
        import soundfile as sf

        data, _ = sf.read(str(self.meeting.audio), start=a, stop=b, dtype="float32", always_2d=True)
        return data[:, 0]

    def figure(self) -> dict:
        """The timeline for the current view (cached decimation: an edit only redraws the lanes)."""
        from app.figures import empty_figure

        if self.meeting is None or self.history is None:
            return empty_figure("Upload a meeting or click 'Open demo meeting' to start")
        key = (round(self.t0, 3), round(self.t1, 3))
        cached = self._wave_cache.get(key)
        if cached is None:
            wt, wy = waveform_window(self._peaks, PEAK_BLOCK, 16000, self.t0, self.t1, MAX_POINTS, raw=self._raw)
            at = ay = None
            if self.run is not None and self.run.acts is not None:
                at, ay = self.run.acts.window(self.t0, self.t1, MAX_POINTS)
            cached = (wt, wy, at, ay)
            self._wave_cache = {key: cached}
        wt, wy, at, ay = cached
        run = self.run
        view = View(
            doc=self.doc, t0=self.t0, t1=self.t1, wave_t=wt, wave_y=wy, act_t=at, act_y=ay,
            act_labels=run.acts.labels if run and run.acts else [],
            threshold=run.acts.threshold if run and run.acts else 0.5,
            unsure=run.unsure if run else [], selected=self.selected, cursor=self.cursor,
            title=f"{self.meeting.name} - view {fmt_time(self.t0)}-{fmt_time(self.t1)} of {fmt_time(self.meeting.duration)}",
        )
        return timeline_figure(view)

    def table_rows(self, limit: int = 400) -> list[list]:
        """Segments in the view window (id, speaker, start, end, duration)."""
        if self.history is None:
            return []
        rows = []
        for s in self.doc.segments:
            if s.end >= self.t0 and s.start <= self.t1:
                rows.append([s.id, s.speaker, s.start, s.end, round(s.duration, 3)])
                if len(rows) >= limit:
                    break
        return rows

    def summary(self) -> str:
        if self.meeting is None or self.history is None:
            return "No meeting open."
        doc = self.doc
        undo, redo = self.history.labels()
        run = self.run.info if self.run else None
        parts = [
            f"**{self.meeting.name}** - {fmt_time(self.meeting.duration)}, {len(doc.segments)} turns, "
            f"{len(doc.speakers)} speakers.",
            f"Model output: {run['model_label']} ({len(run['labels'])} tracks)" if run else "Model not run yet.",
            f"Reviewed: {fmt_time(doc.reviewed_total())}.",
            f"Undo: {undo or '-'} | Redo: {redo or '-'}.",
        ]
        return " ".join(parts)

    # -------------------------------------------------------------- audio clips
    def clip(self, source: str, t0: float | None = None, t1: float | None = None) -> dict:
        """Write a short clip of the mixture or one speaker's separated track; returns player data."""
        import soundfile as sf

        m = self.meeting
        if m is None:
            raise PixitError("open a meeting first")
        if t0 is None or t1 is None:
            if self.selected is not None and self.doc.has(self.selected):
                s = self.doc.get(self.selected)
                t0, t1 = s.start - 0.5, s.end + 0.5
            else:
                t0, t1 = self.t0, self.t1
        t0 = max(0.0, float(t0))
        t1 = min(m.duration, float(t1))
        if t1 - t0 > MAX_CLIP_SECONDS:
            t1 = t0 + MAX_CLIP_SECONDS
        if t1 <= t0:
            raise PixitError("empty region")
        a, b = int(t0 * 16000), int(t1 * 16000)
        if source in ("mixture", "", None):
            x = self._raw(a, b)
            title = "Mixture"
        else:
            if self.run is None or self.run.sources is None:
                raise PixitError("run the model first: separated tracks come from it")
            cols = self.doc.tracks_of(source)
            labels = self.run.info["labels"]
            idx = [labels.index(c) for c in cols if c in labels]
            if not idx:
                raise PixitError(f"{source} has no separated track (it was added by hand)")
            x = np.asarray(self.run.sources[a:b, idx], np.float32).sum(axis=1)
            title = f"{source} (separated)"
        peak = float(np.abs(x).max()) if len(x) else 0.0
        if peak > 0.99:
            x = x * (0.99 / peak)
        path = self.ws.clip_path()
        sf.write(path, x, 16000, subtype="PCM_16")
        return {"url": file_url(path, "clip"), "start": round(t0, 3), "end": round(t1, 3),
                "title": html_text(f"{title}, {t0:.2f}-{t1:.2f} s"), "source": source or "mixture"}

    # -------------------------------------------------------------- export
    def _export_file(self, suffix: str) -> Path:
        """exports/<meeting uri><suffix>: served to this session only, as /pixit/export/<name>."""
        return self.ws.export_dir() / f"{safe_filename(self.meeting.uri, 'recording')}{suffix}"

    def export_rttm(self) -> Path:
        from core.annotation import rttm_text

        m = self.meeting
        if m is None or self.history is None:
            raise PixitError("open a meeting first")
        path = self._export_file(".rttm")
        from core.fileio import atomic_write_text

        atomic_write_text(path, rttm_text(to_annotation(self.doc, m.uri), m.uri))
        return path

    def export_uem(self) -> Path | None:
        from core.fileio import atomic_write_text

        m = self.meeting
        if m is None or self.history is None:
            raise PixitError("open a meeting first")
        path = self._export_file(".uem")
        atomic_write_text(path, "".join(f"{m.uri} 1 {a:.3f} {b:.3f}\n" for a, b in self.doc.reviewed))
        return path

    def export_csv(self) -> Path:
        m = self.meeting
        if m is None or self.history is None:
            raise PixitError("open a meeting first")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["start", "end", "duration", "speaker"])
        for s in self.doc.segments:
            w.writerow([f"{s.start:.3f}", f"{s.end:.3f}", f"{s.duration:.3f}", s.speaker])
        from core.fileio import atomic_write_text

        path = self._export_file("_segments.csv")
        atomic_write_text(path, buf.getvalue())
        return path

    def export_tracks(self, progress=None) -> Path:
        """The separated tracks (named after the current speakers) as 16-bit WAVs in a zip."""
        import soundfile as sf

        m = self.meeting
        if m is None:
            raise PixitError("open a meeting first")
        if self.run is None or self.run.sources is None:
            raise PixitError("run the model first: the separated tracks come from it")
        uri = safe_filename(m.uri, "recording")
        path = self._export_file("_tracks.zip")
        tmp = path.with_suffix(".zip.tmp")
        labels = self.run.info["labels"]
        names = unique_filenames(self.doc.speakers)  # a speaker called '../../x' is 'x.wav' here
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            for spk in self.doc.speakers:
                idx = [labels.index(c) for c in self.doc.tracks_of(spk) if c in labels]
                if not idx:
                    continue
                x = np.asarray(self.run.sources[:, idx], np.float32).sum(axis=1)
                buf = io.BytesIO()
                sf.write(buf, np.clip(x, -1, 1), 16000, format="WAV", subtype="PCM_16")
                z.writestr(f"{uri}/{names[spk]}.wav", buf.getvalue())
            z.writestr(f"{uri}.rttm", self.export_rttm().read_text())
        tmp.replace(path)
        return path

    # -------------------------------------------------------------- retraining
    def corrected_meetings(self) -> list[tuple[Meeting, Doc]]:
        out = []
        for m in self.ws.meetings():
            doc, _ = m.load_doc()
            if doc is not None and doc.reviewed and doc.reviewed_total() >= 2.0:
                out.append((m, doc))
        return out

    def build_manifests(self, out: Path, heldout: float = 0.2) -> tuple[Path, Path, list[str]]:
        """Train/held-out manifests from the reviewed parts of the corrected meetings.

        The last `heldout` fraction (in time) of each meeting's reviewed region is held out."""
        from core.annotation import rttm_text

        meetings = self.corrected_meetings()
        if not meetings:
            raise PixitError("no corrected meeting yet: review part of a meeting and mark it as reviewed "
                             "(Edit tab > 'Mark view as reviewed', or key R) before retraining")
        out.mkdir(parents=True, exist_ok=True)
        train_rows, held_rows, notes = ["audio,rttm,uem"], ["audio,rttm,uem"], []
        for m, doc in meetings:
            train_uem, held_uem = split_reviewed(doc.reviewed, heldout)
            rttm = out / f"{m.id}.rttm"
            rttm.write_text(rttm_text(to_annotation(doc, m.uri), m.uri))
            tu, hu = out / f"{m.id}.train.uem", out / f"{m.id}.heldout.uem"
            tu.write_text("".join(f"{m.uri} 1 {a:.3f} {b:.3f}\n" for a, b in train_uem))
            hu.write_text("".join(f"{m.uri} 1 {a:.3f} {b:.3f}\n" for a, b in held_uem))
            if train_uem:
                train_rows.append(f"{m.audio},{rttm},{tu}")
            if held_uem:
                held_rows.append(f"{m.audio},{rttm},{hu}")
            notes.append(f"{m.name}: trained on {fmt_regions(train_uem)}, held out {fmt_regions(held_uem)}")
        if len(train_rows) == 1:
            raise PixitError("the reviewed parts are too short to train on")
        tm, hm = out / "train.csv", out / "heldout.csv"
        tm.write_text("\n".join(train_rows) + "\n")
        hm.write_text("\n".join(held_rows) + "\n")
        return tm, hm, notes

    def retrain(self, model: str, model_label: str, lr: float, steps: int, heldout: float,
                progress=None, should_stop=None) -> str:
        """Fine-tune `model` on the corrections, register the new version, re-run and score it."""
        from core.training import TrainConfig, train

        progress = progress or (lambda f, m="": None)
        if self.meeting is None:
            raise PixitError("open a meeting first")
        if not (0.0 < heldout < 0.9):
            raise PixitError("held-out fraction must be between 0 and 0.9")
        cap = int(self.settings.max_retrain_steps)
        if not (1 <= int(steps) <= cap):
            raise PixitError(f"steps must be between 1 and {cap} on this server (pixit app --max-retrain-steps)")
        if not (0 < float(lr) < 1):
            raise PixitError("learning rate must be between 0 and 1")
        vid, vdir = self.ws.new_version_dir()
        try:
            train_csv, held_csv, notes = self.build_manifests(vdir / "data", heldout)
        except PixitError:
            shutil.rmtree(vdir, ignore_errors=True)
            raise
        cfg = train_config(TrainConfig, lr=float(lr), steps=int(steps), **(self.settings.train_overrides or {}))
        progress(0.0, "fine-tuning")
        try:
            result = train(train_csv, vdir / "run", init=model, config=cfg,
                           progress=lambda f, m="": progress(0.75 * f, m or "fine-tuning"), should_stop=should_stop)
        except BaseException:
            shutil.rmtree(vdir, ignore_errors=True)
            raise
        model_dir = Path(result.model_dir)
        info = {"id": vid, "path": str(model_dir), "parent": model_label, "created": time.time(), "lr": float(lr),
                "steps": int(steps), "heldout": heldout, "notes": notes}
        self.ws.add_version(info)
        # score before (the model output the user corrected) and after (a new run) on the held-out part
        before_doc = self.history.original
        progress(0.78, "re-running the new model on the meeting")
        prev = self.run.info if self.run else {}
        self.run_model(str(model_dir), vid, num_speakers=prev.get("num_speakers"),
                       min_speakers=prev.get("min_speakers"), max_speakers=prev.get("max_speakers"),
                       progress=lambda f, m="": progress(0.78 + 0.2 * f, m), should_stop=should_stop)
        after_doc = self.history.original
        held = split_reviewed(self.doc.reviewed, heldout)[1]
        table = score_table(self.doc, {f"before ({model_label})": before_doc, f"after ({vid})": after_doc},
                            held, self.meeting.uri)
        self.retrain_table = table
        self.retrain_note = (f"New model version **{vid}** (fine-tuned from {model_label}, {int(steps)} steps, "
                             f"lr {float(lr):g}). Scored on the held-out part of **{self.meeting.name}**: "
                             f"{fmt_regions(held)} (the last {int(heldout * 100)}% of the reviewed region, "
                             f"never seen in training). " + " ".join(notes))
        self.message = self.retrain_note
        progress(1.0, "done")
        return self.retrain_note


# ------------------------------------------------------------------ helpers
def fmt_time(t: float) -> str:
    t = max(0.0, float(t))
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h >= 1 else f"{int(m)}:{s:04.1f}"


def fmt_regions(regions) -> str:
    if not regions:
        return "nothing"
    return ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in regions)


def to_annotation(doc: Doc, uri: str):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for s in doc.segments:
        ann[Segment(s.start, s.end), f"t{s.id}"] = s.speaker
    return ann


def split_reviewed(reviewed, heldout: float) -> tuple[list, list]:
    """Split reviewed regions in time: the last `heldout` fraction of their total length is held out."""
    total = sum(b - a for a, b in reviewed)
    cut_len = total * (1.0 - heldout)
    train, held, acc = [], [], 0.0
    for a, b in reviewed:
        if acc + (b - a) <= cut_len:
            train.append((a, b))
        elif acc >= cut_len:
            held.append((a, b))
        else:
            c = a + (cut_len - acc)
            train.append((a, round(c, 3)))
            held.append((round(c, 3), b))
        acc += b - a
    return [r for r in train if r[1] - r[0] > 1e-3], [r for r in held if r[1] - r[0] > 1e-3]


def score_table(reference: Doc, hypotheses: dict[str, Doc], uem_regions, uri: str) -> list[list]:
    """Rows [model, DER %, false alarm %, missed %, confusion %, scored seconds]."""
    from pyannote.core import Segment, Timeline

    from core.metrics import diarization_error

    uem = Timeline([Segment(a, b) for a, b in uem_regions], uri=uri)
    ref = to_annotation(reference, uri)
    rows = []
    for name, hyp in hypotheses.items():
        r = diarization_error(ref, to_annotation(hyp, uri), uem=uem)
        total = float(r.get("total", 0.0)) or 1e-9
        rows.append([name, round(100 * float(r["der"]), 2), round(100 * r["false_alarm"] / total, 2),
                     round(100 * r["missed_detection"] / total, 2), round(100 * r["confusion"] / total, 2),
                     round(sum(b - a for a, b in uem_regions), 2)])
    return rows


def train_config(cls, lr: float, steps: int, **extra):
    """A TrainConfig with the learning rate and step count set, whatever the field names are."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    kw = {k: v for k, v in extra.items() if k in names}
    for cand in ("lr", "learning_rate"):
        if cand in names:
            kw[cand] = lr
            break
    for cand in ("max_steps", "steps"):
        if cand in names:
            kw[cand] = steps
            break
    return cls(**kw)

