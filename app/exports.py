"""Exports of the open meeting (the Export panel's behaviour, no gradio): the corrected RTTM, the
UEM of the reviewed part, the segments CSV and the separated tracks as a zip, written atomically
to exports/ and served to their session only (/pixit/export/<name>)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.access import safe_filename, unique_filenames
from app.editing import Doc
from core.errors import PixitError
from core.fileio import atomic_write_text

if TYPE_CHECKING:
    from app.session import Session


def to_annotation(doc: Doc, uri: str):
    """The document's segments as a pyannote Annotation (for RTTM and scoring)."""
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for s in doc.segments:
        ann[Segment(s.start, s.end), f"t{s.id}"] = s.speaker
    return ann


def _export_file(S: Session, suffix: str) -> Path:
    """exports/<meeting uri><suffix>: served to this session only, as /pixit/export/<name>."""
    return S.ws.export_dir() / f"{safe_filename(S.meeting.uri, 'recording')}{suffix}"


def _open_meeting(S: Session):
    if S.meeting is None or S.history is None:
        raise PixitError("open a meeting first")
    return S.meeting


def export_rttm(S: Session) -> Path:
    from core.annotation import rttm_text

    m = _open_meeting(S)
    path = _export_file(S, ".rttm")
    atomic_write_text(path, rttm_text(to_annotation(S.doc, m.uri), m.uri))
    return path


def export_uem(S: Session) -> Path:
    m = _open_meeting(S)
    path = _export_file(S, ".uem")
    atomic_write_text(path, "".join(f"{m.uri} 1 {a:.3f} {b:.3f}\n" for a, b in S.doc.reviewed))
    return path


def export_csv(S: Session) -> Path:
    _open_meeting(S)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["start", "end", "duration", "speaker"])
    for s in S.doc.segments:
        w.writerow([f"{s.start:.3f}", f"{s.end:.3f}", f"{s.duration:.3f}", s.speaker])
    path = _export_file(S, "_segments.csv")
    atomic_write_text(path, buf.getvalue())
    return path


def export_tracks(S: Session) -> Path:
    """The separated tracks (named after the current speakers) as 16-bit WAVs in a zip."""
    import soundfile as sf

    m = S.meeting
    if m is None:
        raise PixitError("open a meeting first")
    if S.run is None or S.run.sources is None:
        raise PixitError("run the model first: the separated tracks come from it")
    uri = safe_filename(m.uri, "recording")
    path = _export_file(S, "_tracks.zip")
    tmp = path.with_suffix(".zip.tmp")
    labels = S.run.info["labels"]
    doc = S.doc
    names = unique_filenames(doc.speakers)  # a speaker called '../../x' is 'x.wav' here
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        for spk in doc.speakers:
            idx = [labels.index(c) for c in doc.tracks_of(spk) if c in labels]
            if not idx:
                continue
            x = np.asarray(S.run.sources[:, idx], np.float32).sum(axis=1)
            buf = io.BytesIO()
            sf.write(buf, np.clip(x, -1, 1), 16000, format="WAV", subtype="PCM_16")
            z.writestr(f"{uri}/{names[spk]}.wav", buf.getvalue())
        z.writestr(f"{uri}.rttm", export_rttm(S).read_text())
    tmp.replace(path)
    return path
