"""Undo / redo over Doc snapshots, and their saved form: each step as the change from its neighbour
(segments dropped and put), so that the last steps are saved with every edit in a few kilobytes and
come back after a reload or a server restart."""

from __future__ import annotations

import logging

from app.editing import Doc, EditError, Seg, _with

log = logging.getLogger(__name__)

SAVED_STEPS = 200  # undo (and redo) steps kept across a restart


class History:
    """Undo/redo over Doc snapshots. `original` is the model output that `reset` returns to."""

    def __init__(self, doc: Doc, original: Doc | None = None, limit: int = 1000):
        self.doc = doc
        self.original = original if original is not None else doc
        self.limit = limit
        self._undo: list[tuple[str, Doc]] = []
        self._redo: list[tuple[str, Doc]] = []
        self._deltas: dict[tuple[int, int], tuple[Doc, Doc, dict]] = {}

    def apply(self, new: Doc, label: str) -> Doc:
        self._undo.append((label, self.doc))
        if len(self._undo) > self.limit:
            del self._undo[0]
        self._redo.clear()
        self.doc = new
        return new

    def undo(self) -> str:
        if not self._undo:
            raise EditError("nothing to undo")
        label, previous = self._undo.pop()
        self._redo.append((label, self.doc))
        self.doc = previous
        return label

    def redo(self) -> str:
        if not self._redo:
            raise EditError("nothing to redo")
        label, following = self._redo.pop()
        self._undo.append((label, self.doc))
        self.doc = following
        return label

    def reset(self) -> Doc:
        """Back to the model output (itself undoable); reviewed marks are kept."""
        if self.doc.segments == self.original.segments and self.doc.speakers == self.original.speakers:
            raise EditError("already identical to the model output")
        new = _with(self.original, reviewed=self.doc.reviewed, aliases=self.original.aliases,
                    next_id=max(self.original.next_id, self.doc.next_id))
        return self.apply(new, "reset to model output")

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def labels(self) -> tuple[str | None, str | None]:
        return (self._undo[-1][0] if self._undo else None, self._redo[-1][0] if self._redo else None)

    # ---- saved with the edits, so that undo survives a reload and a server restart
    def to_json(self, keep: int = SAVED_STEPS) -> dict:
        """The last `keep` undo and redo steps, each as the change from its neighbour towards the current doc."""
        return {"undo": self._chain(self._undo[-keep:]), "redo": self._chain(self._redo[-keep:])}

    def _chain(self, stack: list[tuple[str, Doc]]) -> list:
        out, nearer = [], self.doc
        for label, doc in reversed(stack):  # nearest to the current doc first
            out.append([label, self._delta(nearer, doc)])
            nearer = doc
        return out[::-1]

    def _delta(self, frm: Doc, to: Doc) -> dict:
        """delta(frm, to), computed once per pair (each save would otherwise diff every step again)."""
        key = (id(frm), id(to))
        hit = self._deltas.get(key)
        if hit is None or hit[0] is not frm or hit[1] is not to:
            if len(self._deltas) > 4 * SAVED_STEPS:
                self._deltas.clear()
            hit = self._deltas[key] = (frm, to, delta(frm, to))  # holding both: their ids stay theirs
        return hit[2]

    @classmethod
    def from_json(cls, doc: Doc, original: Doc, data: dict | None) -> "History":
        """The history saved by `to_json` around `doc`; a damaged one is dropped (the doc stays)."""
        history = cls(doc, original)
        try:
            for name in ("undo", "redo"):
                stack, nearer = [], doc
                for label, change in reversed((data or {}).get(name, [])):
                    nearer = apply_delta(nearer, change)
                    stack.append((str(label), nearer))
                setattr(history, "_" + name, stack[::-1])
        except (KeyError, TypeError, ValueError, EditError) as exc:
            log.warning("saved undo history is damaged and was dropped (%s: %s)", type(exc).__name__, exc)
            history._undo, history._redo = [], []
        return history


def delta(frm: Doc, to: Doc) -> dict:
    """What turns `frm` into `to` (JSON): the segments dropped (by id) and put, and any changed field."""
    a, b = set(frm.segments), set(to.segments)
    change: dict = {"drop": sorted(s.id for s in a - b), "put": [[s.id, s.start, s.end, s.speaker] for s in b - a]}
    if frm.speakers != to.speakers:
        change["speakers"] = list(to.speakers)
    if frm.reviewed != to.reviewed:
        change["reviewed"] = [list(r) for r in to.reviewed]
    if frm.aliases != to.aliases:
        change["aliases"] = [list(x) for x in to.aliases]
    if frm.next_id != to.next_id:
        change["next_id"] = to.next_id
    return change


def apply_delta(doc: Doc, change: dict) -> Doc:
    drop = {int(i) for i in change["drop"]}
    put = tuple(Seg(int(i), float(a), float(b), str(spk)) for i, a, b, spk in change["put"])
    return _with(doc, segments=tuple(s for s in doc.segments if s.id not in drop) + put,
                 speakers=tuple(str(x) for x in change.get("speakers", doc.speakers)),
                 reviewed=tuple((float(a), float(b)) for a, b in change.get("reviewed", doc.reviewed)),
                 aliases=tuple((str(a), str(b)) for a, b in change.get("aliases", doc.aliases)),
                 next_id=int(change.get("next_id", doc.next_id)))
