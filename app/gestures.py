"""Timeline gestures (no gradio): what a drag on a speaker lane means, as one undoable edit.

- drag a segment's edge: resize it ("start" / "end");
- drag its body: move it, and drop it on another speaker's lane to reassign it ("move");
- drag on an empty part of a lane: draw a new segment for that speaker ("draw").

Each gesture goes through `app.edits.apply` (the same validation, history step and autosave as
the buttons). The dragged edges snap to the nearest edge of the model's activation for that
speaker (where its curve crosses the threshold line of the figure) within `tol` seconds, which the
browser sends as a few pixels of the current zoom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from app import edits
from app.editing import EditError

if TYPE_CHECKING:
    from app.session import Session

GESTURES = ("start", "end", "move", "draw")
MAX_TOLERANCE = 2.0  # s: never snap further than this, whatever the zoom


def activation_edges(S: Session, speaker: str, t0: float, t1: float) -> np.ndarray:
    """Times in [t0, t1] where the model's activation of `speaker` crosses its threshold."""
    acts = S.run.acts if S.run is not None else None
    if acts is None:
        return np.zeros(0)
    cols = [acts.labels.index(m) for m in S.doc.tracks_of(speaker) if m in acts.labels]
    f0 = max(0, int((t0 - acts.start) / acts.step))
    f1 = min(len(acts.data), int(np.ceil((t1 - acts.start) / acts.step)) + 2)
    if not cols or f1 - f0 < 2:
        return np.zeros(0)
    on = (np.asarray(acts.data[f0:f1])[:, cols] > acts.threshold).any(axis=1)
    first_of_new_state = np.flatnonzero(np.diff(on.astype(np.int8))) + 1
    return acts.start + (f0 + first_of_new_state - 0.5) * acts.step


def snap(S: Session, speaker: str, t: float, tol: float) -> float:
    """`t` moved to the nearest activation edge of `speaker` within `tol` s (unchanged if none)."""
    if tol <= 0:
        return t
    edges = activation_edges(S, speaker, t - tol, t + tol)
    if len(edges) == 0:
        return t
    best = float(edges[np.argmin(np.abs(edges - t))])
    return round(best, 3) if abs(best - t) <= tol else t


def _number(data: dict, key: str) -> float:
    try:
        x = float(data[key])
    except (KeyError, TypeError, ValueError):
        raise EditError(f"the gesture sent no valid '{key}'") from None
    if not np.isfinite(x):
        raise EditError(f"the gesture sent no valid '{key}'")
    return x


def apply_gesture(S: Session, data: dict) -> str:
    """Apply one gesture sent by the timeline: {mode, id (not for draw), start, end, lane, tol, snap}."""
    mode = data.get("mode")
    if mode not in GESTURES:
        raise EditError(f"unknown gesture {mode!r}")
    if S.history is None:
        raise EditError("open a meeting first")
    start, end = sorted((_number(data, "start"), _number(data, "end")))
    lane = int(_number(data, "lane"))
    speaker = S.doc.speaker_of_index(lane + 1)
    if speaker is None:
        raise EditError("drop segments on a speaker's lane (not on overlap, unsure or reviewed)")
    tol = min(max(_number(data, "tol"), 0.0), MAX_TOLERANCE) if data.get("snap", True) else 0.0
    if mode == "draw":
        wanted = (start, end)
        got = (snap(S, speaker, start, tol), snap(S, speaker, end, tol))
        edits.apply(S, "add", *got, speaker, _label("draw segment", got != wanted))
        return S.message
    seg_id = int(_number(data, "id"))
    if not S.doc.has(seg_id):
        raise EditError(f"segment {seg_id} no longer exists (the timeline was out of date: try again)")
    seg = S.doc.get(seg_id)
    if mode == "start":
        wanted = (start, seg.end)
        got = (snap(S, speaker, start, tol), seg.end)
    elif mode == "end":
        wanted = (seg.start, end)
        got = (seg.start, snap(S, speaker, end, tol))
    else:
        wanted = (start, end)
        got = _snap_shift(S, speaker, start, end, tol)
    what = "resize segment" if mode != "move" else "move segment" if speaker == seg.speaker else f"move segment to {speaker}"
    S.selected = seg_id
    edits.apply(S, "drag", *got, speaker, _label(what, got != wanted))
    return S.message


def _label(what: str, snapped: bool) -> str:
    return f"{what} (snapped to the model's activation)" if snapped else what


def _snap_shift(S: Session, speaker: str, start: float, end: float, tol: float) -> tuple[float, float]:
    """A moved segment keeps its length: shift it by the smaller of its two edges' snaps."""
    shifts = [d for d in (snap(S, speaker, start, tol) - start, snap(S, speaker, end, tol) - end) if d != 0]
    d = min(shifts, key=abs) if shifts else 0.0
    return round(start + d, 3), round(end + d, 3)
