"""The meetings of a workspace (the "Meetings" panel's behaviour, no gradio): checking and storing
an uploaded recording, the demo meeting, the list and the one-line summary of the open one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.timefmt import fmt_time
from app.workspace import Meeting
from core.errors import AudioError, PixitError

if TYPE_CHECKING:
    from app.session import Session

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")
MIN_AUDIO_SECONDS = 1.0
REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "assets" / "demo"


def add_audio(S: Session, path: str | Path, name: str | None = None, source: str = "upload") -> Meeting:
    """Validate and store an uploaded recording; opens it. Raises AudioError with the reason."""
    from core.audio import load_audio

    path = Path(path)
    shown = name or path.name
    suffix = Path(str(shown)).suffix.lower() or path.suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        raise AudioError(f"{Path(shown).name}: unsupported file type '{suffix or '?'}' "
                         f"(use {', '.join(s.lstrip('.') for s in AUDIO_SUFFIXES)})")
    settings = S.settings
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{Path(shown).name}: the file is empty")
    if size > settings.max_upload_mb * 1e6:
        raise AudioError(f"{Path(shown).name}: {size / 1e6:.0f} MB is over the {settings.max_upload_mb:.0f} MB upload limit")
    try:
        import soundfile as sf
        info = sf.info(str(path))
        if info.frames / max(info.samplerate, 1) > settings.max_audio_hours * 3600:
            raise AudioError(f"{Path(shown).name}: longer than {settings.max_audio_hours:g} h")
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
    with S.lock:
        meeting = S.ws.add_meeting(waveform, shown, source)
        S.open_meeting(meeting.id)
        S.message = f"Loaded **{meeting.name}** ({fmt_time(meeting.duration)}). Press **Run model**."
        return meeting


def open_demo(S: Session) -> Meeting:
    """Open the shipped demo meeting (stored once per workspace, with its reference RTTM for scoring)."""
    wavs = sorted(Path(S.settings.demo_dir or DEMO_DIR).glob("*.wav"))
    if not wavs:
        raise PixitError("the demo meeting is not installed (assets/demo/ has no .wav)")
    for m in S.ws.meetings():  # open the demo once per workspace
        if m.meta.get("source") == "demo":
            S.open_meeting(m.id)
            S.message = f"Opened the demo meeting **{m.name}**. Press **Run model** (its reference RTTM is used for scoring)."
            return m
    add_audio(S, wavs[0], wavs[0].name, source="demo")
    meeting = S.meeting
    rttm = wavs[0].with_suffix(".rttm")
    if rttm.is_file():
        shutil.copyfile(rttm, meeting.path / "reference.rttm")
        meeting.meta["reference"] = "reference.rttm"
        meeting.save_meta()
    S.message = f"Opened the demo meeting **{meeting.name}** ({fmt_time(meeting.duration)}). Press **Run model**."
    return meeting


def meeting_choices(S: Session) -> list[tuple[str, str]]:
    """(shown name with duration, meeting id) of every meeting of the workspace."""
    return [(f"{m.name} ({fmt_time(m.duration)})", m.id) for m in S.ws.meetings()]


def summary(S: Session) -> str:
    """One paragraph on the open meeting: size, model output, reviewed time, undo/redo."""
    if S.meeting is None or S.history is None:
        return "No meeting open."
    doc = S.doc
    undo, redo = S.history.labels()
    run = S.run.info if S.run else None
    speaking = {s.speaker for s in doc.segments}
    empty = len([x for x in doc.speakers if x not in speaking])
    parts = [
        f"**{S.meeting.name}** - {fmt_time(S.meeting.duration)}, {len(doc.segments)} turns, "
        f"{len(speaking)} speakers" + (f" (+{empty} lane{'s' if empty > 1 else ''} without turns)." if empty else "."),
        f"Model output: {run['model_label']} ({len(run['labels'])} tracks)" if run else "Model not run yet.",
        f"Reviewed: {fmt_time(doc.reviewed_total())}.",
        f"Undo: {undo or '-'} | Redo: {redo or '-'}.",
    ]
    return " ".join(parts)
