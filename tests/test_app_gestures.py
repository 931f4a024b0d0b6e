"""Timeline gestures (app/gestures.py) on a real session: each is one validated, undoable edit, and
the dragged edges snap to the model's activation edges. The browser side: test_app_browser.py."""

import pytest

from app_fixtures import long_meeting_session
from app import edits, gestures
from app.editing import EditError


@pytest.fixture
def S(tmp_path):
    return long_meeting_session(tmp_path, 60.0, 12, 2)


def _alone(S):
    """A segment that overlaps no other turn, with room after it (so moves and resizes stay simple)."""
    segs = sorted(S.doc.segments, key=lambda s: s.start)
    for s in segs:
        if s.duration > 0.6 and all(o.id == s.id or o.end < s.start - 1.0 or o.start > s.end + 1.0 for o in segs):
            return s
    raise AssertionError("no isolated segment in this synthetic meeting")


def test_resize_snaps_to_the_activation_edge_unless_asked_not_to(S):
    seg = _alone(S)
    lane = S.doc.speakers.index(seg.speaker)
    gestures.apply_gesture(S, {"mode": "end", "id": seg.id, "start": seg.start, "end": seg.end + 0.1,
                               "lane": lane, "tol": 0.2})
    snapped = S.doc.get(seg.id)
    assert abs(snapped.end - seg.end) <= 0.02  # the model's edge is where the turn ended (one frame)
    assert "snapped to the model's activation" in S.message
    edits.undo(S)
    gestures.apply_gesture(S, {"mode": "end", "id": seg.id, "start": seg.start, "end": seg.end + 0.1,
                               "lane": lane, "tol": 0.2, "snap": False})
    assert S.doc.get(seg.id).end == pytest.approx(seg.end + 0.1, abs=1e-3)
    assert "resize segment" in S.message and "snapped" not in S.message


def test_move_to_another_lane_is_one_undoable_edit(S):
    seg = _alone(S)
    other = [s for s in S.doc.speakers if s != seg.speaker][0]
    before = S.doc
    gestures.apply_gesture(S, {"mode": "move", "id": seg.id, "start": seg.start + 0.5, "end": seg.end + 0.5,
                               "lane": S.doc.speakers.index(other), "tol": 0.0})
    moved = S.doc.get(seg.id)
    assert moved.speaker == other and moved.start == pytest.approx(seg.start + 0.5, abs=1e-3)
    assert moved.duration == pytest.approx(seg.duration, abs=1e-3)
    assert S.selected == seg.id and f"move segment to {other}" in S.message
    edits.undo(S)
    assert S.doc == before


def test_draw_on_an_empty_stretch_adds_a_turn_for_that_lane(S):
    n = len(S.doc.segments)
    spk = S.doc.speakers[1]
    gestures.apply_gesture(S, {"mode": "draw", "start": 59.5, "end": 58.9, "lane": 1, "tol": 0.0})
    assert len(S.doc.segments) == n + 1
    new = S.doc.get(S.selected)
    assert (new.start, new.end, new.speaker) == (58.9, 59.5, spk)
    assert "draw segment" in S.message


@pytest.mark.parametrize("data, message", [
    ({"mode": "move", "id": 0, "start": 1, "end": 2, "lane": 2, "tol": 0}, "speaker's lane"),
    ({"mode": "fling", "id": 0, "start": 1, "end": 2, "lane": 0, "tol": 0}, "unknown gesture"),
    ({"mode": "move", "id": 99999, "start": 1, "end": 2, "lane": 0, "tol": 0}, "no longer exists"),
    ({"mode": "draw", "start": "x", "end": 2, "lane": 0, "tol": 0}, "valid 'start'"),
    ({"mode": "draw", "start": 59.0, "end": 61.0, "lane": 0, "tol": 0}, "past the end of the recording"),
])
def test_bad_gestures_change_nothing(S, data, message):
    before = S.doc
    with pytest.raises(EditError, match=message):
        gestures.apply_gesture(S, data)
    assert S.doc == before
