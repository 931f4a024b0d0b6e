"""The timeline's behaviour (no gradio): the view window (zoom, pan, whole meeting), the cursor,
selecting and stepping through segments and unsure places, and the figure and table of the view."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app import editing as E
from app.figures import MAX_POINTS, View, empty_figure, timeline_figure, waveform_window
from app.insight import next_place
from app.spectrogram import MAX_SPAN as SPECTROGRAM_SPAN, image_data_uri, window_spectrogram
from app.timefmt import fmt_time
from app.workspace import PEAK_BLOCK
from core.errors import PixitError

if TYPE_CHECKING:
    from app.session import Session


def select(S: Session, seg_id) -> E.Seg:
    """Select a segment and put the cursor in its middle (so S right after a click splits it)."""
    with S.lock:
        seg = S.doc.get(seg_id)
        S.selected = seg.id
        S.cursor = round((seg.start + seg.end) / 2, 3)
        ensure_visible(S, seg.start, seg.end)
        S.message = f"Selected {seg.speaker} {seg.start:.2f}-{seg.end:.2f} s."
        return seg


def step(S: Session, direction: int) -> E.Seg | None:
    with S.lock:
        seg = E.next_segment(S.doc, S.selected, S.cursor, direction)
        if seg is None:
            raise PixitError("there are no segments yet")
        return select(S, seg.id)


def next_unsure(S: Session, direction: int = 1):
    with S.lock:
        if S.run is None:
            raise PixitError("run the model first: unsure places come from its output")
        if not S.run.unsure:
            raise PixitError("the model flagged no unsure place in this meeting")
        p = next_place(S.run.unsure, S.cursor, direction)
        a, b, kind, detail = p
        S.cursor = a
        span = min(max(20.0, (b - a) + 10.0), 120.0)  # zoom in around it: details matter here
        set_view(S, a - 5.0, a - 5.0 + span)
        hit = E.segment_at(S.doc, (a + b) / 2)
        S.selected = hit.id if hit else None
        idx = S.run.unsure.index(p) + 1
        S.message = (f"Unsure place {idx}/{len(S.run.unsure)}: **{kind}** at {a:.2f}-{b:.2f} s "
                     f"({current_names(S.doc, detail)}).")
        return p


def current_names(doc: E.Doc, text: str) -> str:
    """`text` (written when the model ran) with each model speaker label replaced by its current name."""
    import re

    names = {m: doc.alias(m) or f"{m} (removed)" for m, _ in doc.aliases}
    if not names:
        return text
    pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(m) for m in sorted(names, key=len, reverse=True)) + r")(?![\w-])")
    return pattern.sub(lambda hit: names[hit.group(1)], text)


def ensure_visible(S: Session, a, b, pad=2.0) -> None:
    if a < S.t0 or b > S.t1:
        span = max(S.t1 - S.t0, (b - a) + 2 * pad, 10.0)
        span = min(span, 120.0) if (b - a) < 60 else span
        set_view(S, a - pad, a - pad + span)


def set_view(S: Session, t0, t1) -> None:
    d = S.meeting.duration if S.meeting else 0.0
    t0, t1 = float(t0), float(t1)
    span = min(max(t1 - t0, 1.0), d) if d else 1.0
    t0 = min(max(0.0, t0), max(0.0, d - span))
    S.t0, S.t1 = t0, t0 + span


def zoom(S: Session, factor: float) -> None:
    c = (S.t0 + S.t1) / 2
    half = (S.t1 - S.t0) * factor / 2
    set_view(S, c - half, c + half)


def pan(S: Session, fraction: float) -> None:
    span = S.t1 - S.t0
    set_view(S, S.t0 + fraction * span, S.t1 + fraction * span)


def whole(S: Session) -> None:
    set_view(S, 0.0, S.meeting.duration if S.meeting else 0.0)


def set_cursor(S: Session, t) -> None:
    if S.meeting is None:
        return
    S.cursor = float(min(max(0.0, float(t)), S.meeting.duration))


def figure(S: Session) -> dict:
    """The timeline for the current view (cached decimation: an edit only redraws the lanes)."""
    if S.meeting is None or S.history is None:
        return empty_figure("Upload a meeting or click 'Open demo meeting' to start")
    if "peaks" not in S.cache:
        S.cache["peaks"] = S.meeting.peaks()
    key = (round(S.t0, 3), round(S.t1, 3))
    cached = S.cache.get("window")
    if cached is None or cached[0] != key:
        wt, wy = waveform_window(S.cache["peaks"], PEAK_BLOCK, 16000, S.t0, S.t1, MAX_POINTS, raw=S.meeting.samples)
        at = ay = None
        if S.run is not None and S.run.acts is not None:
            at, ay = S.run.acts.window(S.t0, S.t1, MAX_POINTS)
        spec = None
        if S.t1 - S.t0 <= SPECTROGRAM_SPAN:
            spec = image_data_uri(window_spectrogram(S.meeting.samples(int(S.t0 * 16000), int(S.t1 * 16000)), 16000))
        cached = (key, (wt, wy, at, ay, spec))
        S.cache["window"] = cached
    wt, wy, at, ay, spec = cached[1]
    run = S.run
    view = View(
        doc=S.doc, t0=S.t0, t1=S.t1, wave_t=wt, wave_y=wy, act_t=at, act_y=ay,
        act_labels=run.acts.labels if run and run.acts else [],
        threshold=run.acts.threshold if run and run.acts else 0.5,
        unsure=run.unsure if run else [], selected=S.selected, cursor=S.cursor,
        spectrogram=spec,
        title=f"{S.meeting.name} - view {fmt_time(S.t0)}-{fmt_time(S.t1)} of {fmt_time(S.meeting.duration)}",
    )
    return timeline_figure(view)


def table_rows(S: Session, limit: int = 400) -> list[list]:
    """Segments in the view window (id, speaker, start, end, duration)."""
    if S.history is None:
        return []
    rows = []
    for s in S.doc.segments:
        if s.end >= S.t0 and s.start <= S.t1:
            rows.append([s.id, s.speaker, s.start, s.end, round(s.duration, 3)])
            if len(rows) >= limit:
                break
    return rows
