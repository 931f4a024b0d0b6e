"""Per-session workspace on disk: meetings, model runs, autosaved edits, model versions.

Layout (every name below is generated here; an uploaded file's name is only ever displayed):

    <root>/<workspace id>/session.json          current meeting, created
    <root>/<workspace id>/meetings/<mid>/meta.json, audio.wav, peaks.npy, edits.json,
                                      runs/<rid>/run.json, segments.json, activations.npy, sources.npy
    <root>/<workspace id>/models/versions.json, models/<vid>/...   (retrained versions)
    <root>/<workspace id>/exports/<uri>.rttm, .uem, _segments.csv, _tracks.zip
    <root>/.clips/<workspace id>/<random>.wav   short audio clips (temporary: newest 20 kept)

A workspace id is 32 hex characters, a one-way hash of the session's cookie token
(app/access.py): it names a folder but is no credential. Folders are made when something is
first stored, so a visitor who stores nothing leaves nothing on disk.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.editing import Doc
from core.annotation import uri_for
from core.errors import PixitError
from core.fileio import atomic_write_json

SID_RE = re.compile(r"^[0-9a-f]{32}$")
ID_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
SERVED_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
PEAK_BLOCK = 256  # samples per min/max pair of the stored overview (16 ms at 16 kHz)


def default_root() -> Path:
    """$PIXIT_WORKSPACE, else ~/.cache/pixit-workbench (./workspace when the home is not writable)."""
    env = os.environ.get("PIXIT_WORKSPACE")
    if env:
        return Path(env).expanduser()
    home = Path.home() / ".cache" / "pixit-workbench"
    try:
        home.mkdir(parents=True, exist_ok=True)
        return home
    except OSError:
        return Path("workspace").resolve()


def new_session_id() -> str:
    return secrets.token_hex(16)


def valid_session_id(sid) -> bool:
    return isinstance(sid, str) and bool(SID_RE.match(sid))


def _new_id(prefix: str) -> str:
    return f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def display_name(name: str | None) -> str:
    """An uploaded file's name, reduced to something safe to *show* (never used as a path)."""
    base = re.split(r"[\\/]", str(name or "recording"))[-1]
    base = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")[:80]
    return base or "recording"


def uri_of(name: str) -> str:
    """RTTM uri for a displayed name (core.annotation.uri_for: one RTTM field)."""
    return uri_for(display_name(name).rsplit(".", 1)[0])


def peak_pyramid(waveform: np.ndarray, block: int = PEAK_BLOCK) -> np.ndarray:
    """(N, 2) float32 min/max of consecutive `block`-sample blocks (the whole-meeting overview)."""
    n = len(waveform) // block
    out = np.zeros((n + (1 if len(waveform) % block else 0), 2), np.float32)
    chunk = block * 4096
    for i in range(0, n * block, chunk):
        part = np.asarray(waveform[i : min(i + chunk, n * block)]).reshape(-1, block)
        out[i // block : i // block + len(part), 0] = part.min(axis=1)
        out[i // block : i // block + len(part), 1] = part.max(axis=1)
    if len(waveform) % block:
        tail = np.asarray(waveform[n * block :])
        out[-1] = tail.min(), tail.max()
    return out


@dataclass
class Meeting:
    """One recording in a workspace (paths only; arrays are loaded on demand)."""

    id: str
    path: Path
    meta: dict

    @property
    def name(self) -> str:
        return self.meta.get("name", self.id)

    @property
    def uri(self) -> str:
        return self.meta.get("uri", "recording")

    @property
    def duration(self) -> float:
        return float(self.meta["duration"])

    @property
    def audio(self) -> Path:
        return self.path / "audio.wav"

    def peaks(self) -> np.ndarray:
        return np.load(self.path / "peaks.npy")

    def samples(self, a: int, b: int) -> np.ndarray:
        """Samples a..b of the stored 16 kHz mono audio, float32."""
        import soundfile as sf

        data, _ = sf.read(str(self.audio), start=a, stop=b, dtype="float32", always_2d=True)
        return data[:, 0]

    def run_dir(self, rid: str) -> Path:
        if not ID_RE.match(rid or ""):
            raise PixitError(f"invalid run id {rid!r}")
        return self.path / "runs" / rid

    def runs(self) -> list[dict]:
        out = []
        for d in sorted((self.path / "runs").glob("*/run.json")):
            info = _read_json(d)
            if info:
                out.append(info)
        return sorted(out, key=lambda r: r.get("created", 0))

    def save_meta(self) -> None:
        atomic_write_json(self.path / "meta.json", self.meta)

    # ---- edits (autosave)
    def save_doc(self, doc: Doc, original_run: str | None = None, history: dict | None = None) -> None:
        """The edits, atomically, with the undo history (app/history.py) that leads to them."""
        atomic_write_json(self.path / "edits.json", {"saved": time.time(), "run": original_run, "doc": doc.to_json(),
                                                     "history": history})

    def load_doc(self) -> tuple[Doc | None, str | None, dict | None]:
        """(doc, the run it was edited from, its saved undo history) or Nones."""
        data = _read_json(self.path / "edits.json")
        if not data:
            return None, None, None
        return Doc.from_json(data["doc"]), data.get("run"), data.get("history")


class Workspace:
    """The folder of one session (one browser, or one API client)."""

    def __init__(self, root: str | Path, sid: str):
        if not valid_session_id(sid):
            raise PixitError("invalid session id")
        self.root = Path(root)
        self.sid = sid
        self.path = self.root / sid
        self.clips = self.root / ".clips" / sid

    # ---- session metadata
    def state(self) -> dict:
        return _read_json(self.path / "session.json", {}) or {}

    def set_state(self, **kw) -> None:
        st = self.state()
        st.update(kw)
        atomic_write_json(self.path / "session.json", st)

    # ---- meetings
    def add_meeting(self, waveform: np.ndarray, name: str, source: str, sample_rate: int = 16000) -> Meeting:
        """Store a (mono float32 16 kHz) recording under a generated id."""
        from core.audio import save_audio

        mid = _new_id("m")
        path = self.path / "meetings" / mid
        path.mkdir(parents=True)
        save_audio(path / "audio.wav", waveform, sample_rate)
        np.save(path / "peaks.npy", peak_pyramid(waveform))
        meta = {
            "id": mid, "name": display_name(name), "uri": uri_of(name), "source": source,
            "duration": len(waveform) / sample_rate, "sample_rate": sample_rate,
            "created": time.time(), "run": None,
        }
        meeting = Meeting(mid, path, meta)
        meeting.save_meta()
        return meeting

    def meeting(self, mid: str) -> Meeting:
        if not isinstance(mid, str) or not ID_RE.match(mid):
            raise PixitError("no such meeting in this workspace")
        path = self.path / "meetings" / mid
        meta = _read_json(path / "meta.json")
        if not meta:
            raise PixitError("no such meeting in this workspace")
        return Meeting(mid, path, meta)

    def meetings(self) -> list[Meeting]:
        out = []
        folder = self.path / "meetings"
        for d in (folder.iterdir() if folder.is_dir() else ()):
            meta = _read_json(d / "meta.json")
            if meta:
                out.append(Meeting(d.name, d, meta))
        return sorted(out, key=lambda m: m.meta.get("created", 0))

    def delete_meeting(self, mid: str) -> None:
        shutil.rmtree(self.meeting(mid).path, ignore_errors=True)

    # ---- model versions
    def versions(self) -> list[dict]:
        return _read_json(self.path / "models" / "versions.json", []) or []

    def new_version_dir(self) -> tuple[str, Path]:
        n = len(self.versions()) + 1
        vid = f"v{n}-{secrets.token_hex(2)}"
        path = self.path / "models" / vid
        path.mkdir(parents=True)
        return vid, path

    def add_version(self, info: dict) -> None:
        versions = self.versions() + [info]
        atomic_write_json(self.path / "models" / "versions.json", versions)

    def version(self, vid: str) -> dict:
        for v in self.versions():
            if v["id"] == vid:
                return v
        raise PixitError(f"no model version {vid!r} in this workspace")

    # ---- files served to the session (app/middleware.py: /pixit/clip/<name>, /pixit/export/<name>)
    def clip_path(self) -> Path:
        """A fresh file name for a served clip; keeps only the newest 20 clips."""
        self.clips.mkdir(parents=True, exist_ok=True)
        old = sorted(self.clips.glob("*.wav"), key=lambda p: p.stat().st_mtime)
        for p in old[:-19]:
            try:
                p.unlink()
            except OSError:
                pass
        return self.clips / f"{secrets.token_hex(8)}.wav"

    def export_dir(self) -> Path:
        d = self.path / "exports"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def served_file(self, kind: str, name: str) -> Path | None:
        """The file a /pixit/<kind>/<name> URL names in this workspace, or None: only a plain
        file name, only inside this workspace's clip or export folder."""
        folder = {"clip": self.clips, "export": self.path / "exports"}.get(kind)
        if folder is None or not SERVED_RE.match(name or "") or name.startswith("."):
            return None
        path = folder / name
        ok = path.is_file() and not path.is_symlink() and path.parent.resolve() == folder.resolve()
        return path if ok else None

    def drop_clips(self) -> None:
        """Delete the temporary clips (when the session's state is freed)."""
        shutil.rmtree(self.clips, ignore_errors=True)


def drop_stale_clips(root: str | Path, max_age_s: float = 86400.0) -> None:
    """Delete the clip folders nobody has touched for a day (left by an earlier server run: a
    running server deletes a session's clips when it frees the session)."""
    clips = Path(root) / ".clips"
    now = time.time()
    for d in (clips.iterdir() if clips.is_dir() else ()):
        try:
            if now - d.stat().st_mtime > max_age_s:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def file_url(path: Path, kind: str) -> str:
    """The URL of a served file: the kind and the file name, never a session or a server path."""
    return f"/pixit/{kind}/{Path(path).name}"

