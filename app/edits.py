"""Edits of the open meeting (the Edit, Speakers and Reviewed panels' behaviour, no gradio): one
edit by name on the selected segment, undo / redo / reset, and importing an RTTM. Every change is
one step of the History (app/editing.py holds the pure operations) and is autosaved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app import editing as E
from app.editing import EditError
from app.runs import aliases_by_overlap
from core.errors import PixitError

if TYPE_CHECKING:
    from app.session import Session

SEGMENT_EDITS = ("delete", "move", "drag", "split", "set_speaker", "shift")  # they act on the selected segment


def _segment_edit(S: Session, doc: E.Doc, name: str, sel: int, args: tuple) -> tuple[E.Doc, int | None, str]:
    if name == "delete":
        new = E.delete_segment(doc, sel)
        nxt = E.next_segment(new, None, doc.get(sel).start)
        return new, (nxt.id if nxt else None), "delete segment"
    if name == "move":
        return E.move_segment(doc, sel, *args), sel, "move/resize segment"
    if name == "drag":  # a timeline gesture: (start, end, speaker, label)
        start, end, speaker, label = args
        return E.drag_segment(doc, sel, start, end, speaker), sel, label
    if name == "shift":
        return E.shift_segment(doc, sel, *args), sel, "move segment"
    if name == "split":
        at = args[0] if args and args[0] is not None else S.cursor
        new, _ = E.split_segment(doc, sel, at)
        return new, sel, "split segment"
    spk = args[0]
    if isinstance(spk, int):
        k = spk
        spk = doc.speaker_of_index(k)
        if spk is None:
            if k != len(doc.speakers) + 1:
                raise EditError(f"there is no speaker {k} (speakers 1-{len(doc.speakers)}; "
                                f"{len(doc.speakers) + 1} creates a new one)")
            spk = E.new_speaker_name(doc)
    return E.set_speaker(doc, sel, spk), sel, f"assign to {spk}"


def _document_edit(doc: E.Doc, name: str, args: tuple) -> tuple[E.Doc, str]:
    if name == "rename":
        return E.rename_speaker(doc, *args), f"rename {args[0]} to {args[1]}"
    if name == "merge":
        return E.merge_speakers(doc, *args), f"merge {args[1]} into {args[0]}"
    if name == "add_speaker":
        return E.add_speaker(doc, *args), f"add speaker {args[0]}"
    if name == "review":
        return E.mark_reviewed(doc, *args), "mark reviewed"
    if name == "unreview":
        return E.unmark_reviewed(doc, *args), "unmark reviewed"
    if name == "import":
        return args[0], "import RTTM"
    raise EditError(f"unknown edit {name}")


def apply(S: Session, name: str, *args) -> str:
    """Apply one edit operation by name; autosave; returns a status line. Raises EditError."""
    with S.lock:
        doc = S.doc
        sel = S.selected
        if name == "add":
            new, sel = E.add_segment(doc, *args[:3])
            label = args[3] if len(args) > 3 else "add segment"
        elif name in SEGMENT_EDITS:
            if sel is None or not doc.has(sel):
                raise EditError("select a segment first (click it on the timeline or in the table)")
            new, sel, label = _segment_edit(S, doc, name, sel, args)
        else:
            new, label = _document_edit(doc, name, args)
            if name == "rename" and S.solo == args[0]:
                S.solo = E.check_speaker(args[1])  # 'Listen to' follows the renamed speaker
            elif name == "merge" and S.solo == args[1]:
                S.solo = str(args[0])
        S.history.apply(new, label)
        if sel is not None and not new.has(sel):
            sel = None
        S.selected = sel
        S.autosave()
        S.message = f"Done: {label}. (Saved.)"
        return S.message


def _history_step(S: Session, step: str) -> str:
    with S.lock:
        if S.history is None:
            raise PixitError("open a meeting first")
        label = getattr(S.history, step)()
        S.fix_selection()
        S.autosave()
        return label


def undo(S: Session) -> str:
    S.message = f"Undid: {_history_step(S, 'undo')}."
    return S.message


def redo(S: Session) -> str:
    S.message = f"Redid: {_history_step(S, 'redo')}."
    return S.message


def reset(S: Session) -> str:
    _history_step(S, "reset")
    S.message = "Reset to the model output (undo brings your edits back)."
    return S.message


def import_rttm(S: Session, path: str | Path) -> str:
    """Replace the segments with an RTTM's (undoable). A malformed file changes nothing."""
    from core.annotation import read_rttm

    m = S.meeting
    if m is None:
        raise PixitError("open a meeting first, then import an RTTM for it")
    if Path(path).stat().st_size == 0:
        raise PixitError(f"{Path(path).name}: the file is empty")
    anns = read_rttm(path, duration=m.duration)
    if not anns:
        raise PixitError(f"{Path(path).name}: no SPEAKER lines")
    ann = anns.get(m.uri) or (next(iter(anns.values())) if len(anns) == 1 else None)
    if ann is None:
        raise PixitError(f"{Path(path).name}: holds {len(anns)} recordings and none is '{m.uri}'")
    segs = [(s.start, s.end, lab) for s, _, lab in ann.itertracks(yield_label=True)]
    doc = S.doc
    try:
        labels = sorted({E.check_speaker(lab) for *_, lab in segs})
    except EditError as exc:
        raise EditError(f"{Path(path).name}: {exc}") from None
    new = E._with(E.new_doc(m.duration, segs, speakers=labels), reviewed=doc.reviewed,
                  next_id=doc.next_id + len(segs) + 1, aliases=aliases_by_overlap(S.history.original, segs))
    # keep ids unique across undo: renumber from next_id
    base = doc.next_id
    new = E._with(new, segments=tuple(E.Seg(base + i, s.start, s.end, s.speaker) for i, s in enumerate(new.segments)))
    apply(S, "import", new)
    S.message = f"Imported {len(segs)} turns of {len(labels)} speaker(s) from the RTTM (undo restores the previous segments)."
    return S.message
