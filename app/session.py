"""One `Session` per browser (or API client): the state every panel shares, without gradio.

A Session owns a Workspace folder, the open meeting, its edit history, its model run and the view
window (t0, t1, selection, cursor), and the status message. It coordinates: opening a meeting,
autosaving the edits, running one request at a time. What each panel does with that state lives in
the panel's own module (meetings, runs, timeline, edits, clips, exports, retraining, models); the
gradio side of each panel is in app/panels/.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from app import runs
from app.editing import Doc
from app.history import History
from app.lane import Lane
from app.runs import RunData
from app.timefmt import fmt_time
from app.workspace import Meeting, Workspace
from core.errors import PixitError

log = logging.getLogger("pixit.app")


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
    train_overrides: dict | None = None  # core.finetune.FinetuneSettings / TrainConfig fields for "Retrain"
    regression: list | None = None  # Recordings a retrained model must not be worse on (None: the demo meeting)
    demo_dir: Path | None = None  # where the demo meeting (a wav + its rttm) lives; None: assets/demo
    model_dirs: tuple = ()  # folders whose model subfolders users may pick or type by name (--models)
    max_retrain_steps: int = 1000  # one session cannot hold the model slot longer than this
    max_sessions: int = 200  # sessions held in memory at once (app/registry.py)
    session_idle_minutes: float = 30.0  # an unused session's memory is freed after this (files stay)
    max_events_per_session: int = 8  # requests of one session waiting or running (app/middleware.py)
    max_jobs_per_session: int = 1  # model jobs (run, retrain, track export) of one session at once


class Session:
    """The shared state of one visitor's workbench (see the module docstring)."""

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
        self.solo: str = "mixture"  # what 'Listen to' plays: a click on a segment plays it too
        self.message = "Start here: click **Open demo meeting** (top left) or upload a recording."
        self.cache: dict = {}  # what panels derive from the open meeting and its run (dropped with them)
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
        self.cache = {}
        self.ws.drop_clips()

    @property
    def doc(self) -> Doc:
        if self.history is None:
            raise PixitError("open a meeting first (upload one or click 'Open demo meeting')")
        return self.history.doc

    def open_meeting(self, mid: str) -> None:
        """Make meeting `mid` the open one, with its run and its autosaved edits (or the model output)."""
        with self.lock:
            meeting = self.ws.meeting(mid)
            self.meeting = meeting
            self.cache = {}
            self.run = None
            rid = meeting.meta.get("run")
            if rid:
                try:
                    self.run = runs.load_run(meeting, rid)
                except (OSError, ValueError, PixitError) as exc:
                    log.warning("run %s of %s unreadable: %s", rid, mid, exc)
            original = runs.model_doc(meeting, self.run)
            doc, _, saved_history = meeting.load_doc()
            self.history = History.from_json(doc, original, saved_history) if doc is not None else History(original)
            self.t0, self.t1 = 0.0, meeting.duration
            self.selected, self.cursor = None, 0.0
            self.ws.set_state(meeting=mid)
            self.message = f"Opened **{meeting.name}** ({fmt_time(meeting.duration)})."

    def autosave(self) -> None:
        """Write the current edits (every successful edit, undo, redo and reset calls this)."""
        rid = self.run.info["id"] if self.run else None
        self.meeting.save_doc(self.history.doc, rid, self.history.to_json())

    def fix_selection(self) -> None:
        """Forget a selected segment that the document no longer has."""
        if self.selected is not None and not self.doc.has(self.selected):
            self.selected = None
