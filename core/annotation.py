"""Annotations on pyannote.core objects: validated RTTM and UEM reading and writing.

RTTM is the 10-field NIST line `SPEAKER uri 1 start dur <NA> <NA> label <NA> <NA>`; UEM is
`uri 1 start end`. Every malformed line gets a one-line AnnotationError naming file and line.

Readers split lines on whitespace, so a uri or a label must be one field: a recording's uri is its
file name without the extension, each run of whitespace replaced by one "_" (`uri_for`:
"team meeting.wav" -> "team_meeting"; other characters, unicode included, are kept), and the
writers refuse a line that would not read back as written.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from pyannote.core import Annotation, Segment, Timeline

from core.errors import AnnotationError
from core.fileio import atomic_write_text


def uri_for(name: str) -> str:
    """The RTTM uri of a recording called `name` (a file stem): one RTTM field, so each run of
    whitespace becomes one "_"; everything else is kept."""
    return re.sub(r"\s+", "_", str(name)) or "recording"


def read_rttm(path: str | os.PathLike, duration: float | None = None) -> dict[str, Annotation]:
    """Read an RTTM file into one Annotation per uri.

    With `duration`, segments ending past the end of the audio are rejected (tolerance 10 ms).
    """
    path = Path(path)
    annotations: dict[str, Annotation] = {}
    for lineno, fields in _lines(path):
        where = f"{path.name} line {lineno}"
        if fields[0] != "SPEAKER":
            continue  # other RTTM types (SPKR-INFO, LEXEME...) carry no speaker turns
        if len(fields) < 8:
            raise AnnotationError(f"{where}: expected 10 RTTM fields, got {len(fields)}")
        uri, label = fields[1], fields[7]
        start, dur = _number(fields[3], where, "start"), _number(fields[4], where, "duration")
        segment = check_segment(start, start + dur, duration, where)
        annotation = annotations.setdefault(uri, Annotation(uri=uri))
        annotation[segment, annotation.new_track(segment)] = label
    return annotations


def is_blank(path: str | os.PathLike) -> bool:
    """True when an RTTM / UEM file holds nothing but blank lines and ;/# comments."""
    return next(_lines(Path(path)), None) is None


def read_rttm_single(path: str | os.PathLike, uri: str | None = None, duration: float | None = None) -> Annotation:
    """The annotation of one recording: `uri` if given, else the file's only uri (empty if none)."""
    annotations = read_rttm(path, duration)
    if uri is not None:
        return annotations.get(uri, Annotation(uri=uri))
    if len(annotations) > 1:
        raise AnnotationError(f"{Path(path).name}: holds {len(annotations)} recordings, expected one")
    return next(iter(annotations.values()), Annotation(uri=uri_for(Path(path).stem)))


def write_rttm(annotation: Annotation, path: str | os.PathLike, uri: str | None = None) -> None:
    atomic_write_text(path, rttm_text(annotation, uri))


def rttm_text(annotation: Annotation, uri: str | None = None) -> str:
    """RTTM lines of `annotation`; AnnotationError for a line that would not read back as written."""
    uri = _one_field(uri or annotation.uri or "recording", "recording name")
    checked: set = set()
    lines = []
    for seg, _, label in annotation.itertracks(yield_label=True):
        if label not in checked:
            _one_field(str(label), f"speaker label of {uri}")
            checked.add(label)
        start, dur = f"{seg.start:.3f}", f"{seg.duration:.3f}"
        if not (math.isfinite(float(start)) and float(start) >= 0 and math.isfinite(float(dur)) and float(dur) > 0):
            raise AnnotationError(f"{uri}: cannot write the segment start {start} s, duration {dur} s as an RTTM line "
                                  "(RTTM times are non-negative, with 1 ms resolution)")
        lines.append(f"SPEAKER {uri} 1 {start} {dur} <NA> <NA> {label} <NA> <NA>\n")
    return "".join(lines)


def _one_field(value: str, what: str) -> str:
    """`value` unchanged when a whitespace-splitting reader gets it back as one field."""
    if not value or value.split() != [value]:
        raise AnnotationError(f"{what} {value!r} contains whitespace or is empty: it would not be one RTTM/UEM field")
    return value


def read_uem(path: str | os.PathLike, duration: float | None = None) -> dict[str, Timeline]:
    """Read a UEM file (`uri channel start end`) into one Timeline per uri."""
    path = Path(path)
    timelines: dict[str, Timeline] = {}
    for lineno, fields in _lines(path):
        where = f"{path.name} line {lineno}"
        if len(fields) != 4:
            raise AnnotationError(f"{where}: expected 4 UEM fields (uri channel start end), got {len(fields)}")
        start, end = _number(fields[2], where, "start"), _number(fields[3], where, "end")
        segment = check_segment(start, end, duration, where)
        timelines.setdefault(fields[0], Timeline(uri=fields[0])).add(segment)
    return {uri: timeline.support() for uri, timeline in timelines.items()}


def read_uem_single(path: str | os.PathLike, uri: str | None = None, duration: float | None = None) -> Timeline:
    timelines = read_uem(path, duration)
    if uri is not None and uri in timelines:
        return timelines[uri]
    if uri is None and len(timelines) == 1:
        return next(iter(timelines.values()))
    raise AnnotationError(f"{Path(path).name}: no UEM entry for recording '{uri}'")


def write_uem(timeline: Timeline, path: str | os.PathLike, uri: str | None = None) -> None:
    atomic_write_text(path, uem_text(timeline, uri))


def uem_text(timeline: Timeline, uri: str | None = None) -> str:
    uri = _one_field(uri or timeline.uri or "recording", "recording name")
    return "".join(f"{uri} 1 {seg.start:.3f} {seg.end:.3f}\n" for seg in timeline.support())


def check_segment(start: float, end: float, duration: float | None = None, where: str = "segment") -> Segment:
    """A validated Segment: finite, start >= 0, end > start, inside [0, duration] when known."""
    if not (math.isfinite(start) and math.isfinite(end)):
        raise AnnotationError(f"{where}: start and end must be finite numbers")
    if start < 0:
        raise AnnotationError(f"{where}: negative start time {start:.3f}")
    if end <= start:
        raise AnnotationError(f"{where}: zero or negative duration (start {start:.3f}, end {end:.3f})")
    if duration is not None and end > duration + 0.01:
        raise AnnotationError(f"{where}: segment ends at {end:.3f}s, past the end of the audio ({duration:.3f}s)")
    return Segment(start, min(end, duration) if duration is not None else end)


def _lines(path: Path):
    if not path.is_file():
        raise AnnotationError(f"{path.name}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AnnotationError(f"{path.name}: not a text file") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if fields and not fields[0].startswith((";", "#")):
            yield lineno, fields


def _number(text: str, where: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(f"{where}: {what} '{text}' is not a number") from None
