"""Pure edit operations and undo/redo (app/editing.py)."""

import pytest

from app import editing as E
from app.editing import Doc, EditError
from app.history import History


def doc3() -> Doc:
    return E.new_doc(60.0, [(1.0, 4.0, "A"), (3.5, 6.0, "B"), (10.0, 12.5, "A")], model_labels=["A", "B"])


def test_new_doc_sorts_clips_and_keeps_lanes():
    d = E.new_doc(10.0, [(5, 12, "B"), (-1, 2, "A"), (3, 3.001, "A")], speakers=["Z"])
    assert [(s.start, s.end, s.speaker) for s in d.segments] == [(0.0, 2.0, "A"), (5.0, 10.0, "B")]
    assert d.speakers == ("Z", "A", "B")  # declared lanes first, then in order of appearance


def test_add_validates_and_gets_unique_id():
    d = doc3()
    d2, sid = E.add_segment(d, 20, 21.5, "C")
    assert d2.get(sid).speaker == "C" and "C" in d2.speakers and len(d2.segments) == 4
    assert sid not in {s.id for s in d.segments}
    with pytest.raises(EditError, match="after start"):
        E.add_segment(d, 5, 4, "A")
    with pytest.raises(EditError, match="past the end"):
        E.add_segment(d, 59, 61, "A")
    with pytest.raises(EditError, match="before the beginning"):
        E.add_segment(d, -1, 2, "A")
    with pytest.raises(EditError, match="not a number"):
        E.add_segment(d, "x", 2, "A")
    with pytest.raises(EditError, match="spaces"):
        E.add_segment(d, 1, 2, "two words")
    assert d == doc3()  # the original is untouched by failed edits


def test_move_split_delete_set_speaker():
    d = doc3()
    first = d.segments[0]
    d = E.move_segment(d, first.id, 0.5, 3.0)
    assert d.get(first.id).start == 0.5 and d.get(first.id).end == 3.0
    d, second = E.split_segment(d, first.id, 2.0)
    assert (d.get(first.id).end, d.get(second).start, d.get(second).end) == (2.0, 2.0, 3.0)
    with pytest.raises(EditError, match="not inside"):
        E.split_segment(d, first.id, 2.5)
    d = E.set_speaker(d, second, "B")
    assert d.get(second).speaker == "B"
    with pytest.raises(EditError, match="already"):
        E.set_speaker(d, second, "B")
    d = E.delete_segment(d, second)
    assert not d.has(second)
    with pytest.raises(EditError, match="does not exist"):
        E.delete_segment(d, second)


def test_shift_stops_at_edges():
    d = doc3()
    s = d.segments[0]
    d2 = E.shift_segment(d, s.id, -5)
    assert d2.get(s.id).start == 0.0 and d2.get(s.id).end == 3.0


def test_rename_and_merge_follow_tracks():
    d = doc3()
    d = E.rename_speaker(d, "A", "alice")
    assert d.speakers == ("alice", "B") and {s.speaker for s in d.segments} == {"alice", "B"}
    assert d.alias("A") == "alice" and d.tracks_of("alice") == ["A"]
    with pytest.raises(EditError, match="Merge"):
        E.rename_speaker(d, "alice", "B")
    m = E.merge_speakers(d, "alice", "B")
    assert m.speakers == ("alice",)
    # 1-4 and 3.5-6 overlap -> joined into one turn
    assert [(s.start, s.end) for s in m.segments] == [(1.0, 6.0), (10.0, 12.5)]
    assert sorted(m.tracks_of("alice")) == ["A", "B"] and m.alias("B") == "alice"
    with pytest.raises(EditError, match="two different"):
        E.merge_speakers(m, "alice", "alice")


def test_reviewed_regions_union_and_unmark():
    d = E.mark_reviewed(doc3(), 0, 10)
    d = E.mark_reviewed(d, 5, 20)
    assert d.reviewed == ((0.0, 20.0),)
    d = E.unmark_reviewed(d, 8, 9)
    assert d.reviewed == ((0.0, 8.0), (9.0, 20.0)) and d.reviewed_total() == 19.0
    with pytest.raises(EditError, match="already"):
        E.mark_reviewed(d, 1, 2)


def test_overlaps_and_navigation():
    d = doc3()
    assert E.overlaps(d) == [(3.5, 4.0)]
    a, b, c = d.segments
    assert E.next_segment(d, a.id).id == b.id
    assert E.next_segment(d, a.id, step=-1).id == a.id  # clamps at the first
    assert E.next_segment(d, None, t=9.0).id == c.id
    assert E.segment_at(d, 3.7).id == a.id or E.segment_at(d, 3.7).id == b.id
    assert E.segment_at(d, 8.0) is None


def test_history_undo_redo_reset():
    d = doc3()
    h = History(d)
    d1, _ = E.add_segment(h.doc, 30, 31, "A")
    h.apply(d1, "add")
    h.apply(E.delete_segment(h.doc, d.segments[0].id), "delete")
    assert len(h.doc.segments) == 3
    assert h.undo() == "delete" and len(h.doc.segments) == 4
    assert h.undo() == "add" and h.doc == d
    with pytest.raises(EditError, match="nothing to undo"):
        h.undo()
    assert h.redo() == "add" and len(h.doc.segments) == 4
    h.apply(E.mark_reviewed(h.doc, 0, 5), "review")
    with pytest.raises(EditError, match="nothing to redo"):
        h.redo()
    h.reset()
    assert h.doc.segments == d.segments and h.doc.reviewed == ((0.0, 5.0),)  # reset keeps the review
    h.undo()
    assert len(h.doc.segments) == 4
    with pytest.raises(EditError, match="identical"):
        History(d).reset()


def test_json_round_trip_and_damaged_json():
    d = E.rename_speaker(E.mark_reviewed(doc3(), 0, 5), "A", "alice")
    back = Doc.from_json(d.to_json())
    assert back == d and back.alias("A") == "alice"
    with pytest.raises(EditError, match="damaged"):
        Doc.from_json({"duration": 1, "segments": [[1, "x", 2, "A"]]})


def test_saved_history_brings_back_every_undo_and_redo_step():
    """The history saved with the edits (as changes between neighbours) rebuilds the same docs."""
    import json

    h = History(doc3())
    steps = [lambda d: E.add_segment(d, 30, 31, "A")[0], lambda d: E.rename_speaker(d, "A", "alice"),
             lambda d: E.mark_reviewed(d, 0, 5), lambda d: E.move_segment(d, d.segments[0].id, 0.5, 2.0),
             lambda d: E.merge_speakers(d, "alice", "B"), lambda d: E.delete_segment(d, d.segments[-1].id)]
    docs = [h.doc]
    for i, step in enumerate(steps):
        docs.append(h.apply(step(h.doc), f"step {i}"))
    h.undo()
    h.undo()
    back = History.from_json(h.doc, docs[0], json.loads(json.dumps(h.to_json())))
    assert back.doc == docs[4] and back.labels() == ("step 3", "step 4")
    assert back.redo() == "step 4" and back.doc == docs[5]
    for k in range(5, 0, -1):
        assert back.doc == docs[k]
        back.undo()
    assert back.doc == docs[0] and not back.can_undo
    damaged = History.from_json(docs[4], docs[0], {"undo": [["x", {"drop": "?"}]]})
    assert damaged.doc == docs[4] and not damaged.can_undo  # a damaged history is dropped, the edits stay


def test_a_speaker_never_overlaps_themself():
    """A resize, move, add or reassignment onto a speaker's own turn joins the two (no self-overlap, no
    duplicate turns in the export); turns that only touch (a split's halves) stay apart."""
    d = doc3()
    a, b, c = d.segments
    grown = E.move_segment(d, a.id, 1.0, 11.0)  # A's first turn now covers A's second
    assert [(s.start, s.end) for s in grown.segments if s.speaker == "A"] == [(1.0, 12.5)]
    assert E.overlaps(grown) == [(3.5, 6.0)]  # only A with B
    added, _ = E.add_segment(d, 11.0, 14.0, "A")
    assert sorted((s.start, s.end) for s in added.segments if s.speaker == "A") == [(1.0, 4.0), (10.0, 14.0)]
    moved = E.set_speaker(d, b.id, "A")
    assert [(s.start, s.end) for s in moved.segments if s.speaker == "A"] == [(1.0, 6.0), (10.0, 12.5)]
    halves, second = E.split_segment(d, c.id, 11.0)
    shifted = E.move_segment(halves, second, 11.0, 13.0)
    assert sorted((s.start, s.end) for s in shifted.segments if s.speaker == "A") == [(1.0, 4.0), (10.0, 11.0), (11.0, 13.0)]
