"""Pure edit operations on a meeting's segment table, with undo/redo.

A `Doc` is an immutable snapshot (segments, speaker lanes, reviewed regions); every operation
returns a new Doc or raises `EditError` with a one-line message, so a bad edit never damages the
current state. `History` keeps the snapshots for undo/redo. Nothing here touches files or gradio:
the workspace saves Docs, the UI renders them.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace
from typing import Iterable

from core.errors import AnnotationError

# Times are kept to the millisecond: what the user types and what RTTM stores.
_DIGITS = 3
MIN_DURATION = 0.01  # a segment shorter than 10 ms is a slip of the mouse, not a turn


class EditError(AnnotationError):
    """An edit that cannot be applied (the message says why); the document is unchanged."""


@dataclass(frozen=True, slots=True)
class Seg:
    id: int
    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Doc:
    """One meeting's diarization as the user is editing it."""

    duration: float
    segments: tuple[Seg, ...] = ()
    speakers: tuple[str, ...] = ()  # lane order; shortcut k assigns speakers[k-1]
    reviewed: tuple[tuple[float, float], ...] = ()  # disjoint, sorted
    next_id: int = 0
    # model label -> current speaker name (follows renames and merges; separated tracks and
    # activation curves keep their model label, this says whose they are now)
    aliases: tuple[tuple[str, str], ...] = ()
    _index: dict = field(default=None, compare=False, repr=False, hash=False)  # id -> position

    # ---------------------------------------------------------------- look-ups
    def get(self, seg_id: int) -> Seg:
        index = self._index
        if index is None:
            index = {s.id: i for i, s in enumerate(self.segments)}
            object.__setattr__(self, "_index", index)
        try:
            return self.segments[index[int(seg_id)]]
        except (KeyError, TypeError, ValueError):
            raise EditError(f"segment {seg_id} does not exist (it may have been deleted)") from None

    def has(self, seg_id) -> bool:
        try:
            self.get(seg_id)
            return True
        except EditError:
            return False

    def speaker_of_index(self, k: int) -> str | None:
        return self.speakers[k - 1] if 1 <= k <= len(self.speakers) else None

    def reviewed_total(self) -> float:
        return sum(e - s for s, e in self.reviewed)

    # ---------------------------------------------------------------- (de)serialisation
    def to_json(self) -> dict:
        return {
            "duration": self.duration,
            "speakers": list(self.speakers),
            "reviewed": [list(r) for r in self.reviewed],
            "next_id": self.next_id,
            "aliases": [list(a) for a in self.aliases],
            "segments": [[s.id, s.start, s.end, s.speaker] for s in self.segments],
        }

    @classmethod
    def from_json(cls, data: dict) -> "Doc":
        try:
            duration = float(data["duration"])
            segs = [Seg(int(i), float(a), float(b), str(spk)) for i, a, b, spk in data["segments"]]
            speakers = [str(s) for s in data.get("speakers", [])]
            reviewed = [(float(a), float(b)) for a, b in data.get("reviewed", [])]
            next_id = int(data.get("next_id", 0))
            aliases = tuple((str(a), str(b)) for a, b in data.get("aliases", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise EditError(f"saved edits are damaged ({type(exc).__name__}: {exc})") from None
        next_id = max([next_id] + [s.id + 1 for s in segs])
        return _make(duration, segs, speakers, reviewed, next_id, aliases)

    def alias(self, model_label: str) -> str | None:
        """The current name of a model speaker (None if its lane was removed)."""
        name = dict(self.aliases).get(model_label, model_label)
        return name if name in self.speakers else None

    def tracks_of(self, speaker: str) -> list[str]:
        """Model labels whose separated track now belongs to `speaker`."""
        return [m for m, cur in self.aliases if cur == speaker]


def _make(duration, segments: Iterable[Seg], speakers: Iterable[str], reviewed, next_id: int,
          aliases=()) -> Doc:
    segs = tuple(sorted(segments, key=lambda s: (s.start, s.end, s.id)))
    lanes = list(dict.fromkeys(speakers))
    for s in segs:
        if s.speaker not in lanes:
            lanes.append(s.speaker)
    return Doc(duration, segs, tuple(lanes), tuple(_union(reviewed)), next_id, tuple(aliases))


def new_doc(duration: float, segments: Iterable[tuple[float, float, str]] = (), speakers: Iterable[str] = (),
            model_labels: Iterable[str] = ()) -> Doc:
    """A Doc from (start, end, speaker) triples, e.g. a model output or an imported RTTM."""
    if not (math.isfinite(duration) and duration > 0):
        raise EditError(f"invalid recording duration {duration}")
    segs = []
    for i, (a, b, spk) in enumerate(segments):
        a, b = _clip(float(a), float(b), duration)
        if b - a >= MIN_DURATION / 2:
            segs.append(Seg(i, a, b, str(spk)))
    return _make(duration, segs, speakers, (), len(segs), tuple((m, m) for m in model_labels))


def _t(x: float) -> float:
    return round(float(x), _DIGITS)


def _clip(a: float, b: float, duration: float) -> tuple[float, float]:
    return _t(max(0.0, a)), _t(min(duration, b))


def _number(value, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise EditError(f"{what} '{value}' is not a number") from None
    if not math.isfinite(x):
        raise EditError(f"{what} must be a finite number")
    return x


def check_times(doc: Doc, start, end) -> tuple[float, float]:
    """Validated (start, end): numbers, start < end, inside the recording."""
    a, b = _t(_number(start, "start")), _t(_number(end, "end"))
    if a < 0:
        raise EditError(f"start {a:.3f} s is before the beginning of the recording")
    if b > doc.duration + 1e-6:
        raise EditError(f"end {b:.3f} s is past the end of the recording ({doc.duration:.3f} s)")
    if b <= a:
        raise EditError(f"end ({b:.3f} s) must be after start ({a:.3f} s)")
    if b - a < MIN_DURATION:
        raise EditError(f"segment too short ({(b - a) * 1000:.0f} ms, minimum {MIN_DURATION * 1000:.0f} ms)")
    return a, b


SPEAKER_FORBIDDEN = "/\\<>\"'`$"  # path separators, HTML and template characters


def check_speaker(name) -> str:
    name = str(name or "").strip()
    if not name:
        raise EditError("speaker name is empty")
    if any(c.isspace() for c in name):
        raise EditError(f"speaker name '{name}' contains spaces (RTTM labels cannot)")
    if len(name) > 64:
        raise EditError("speaker name is longer than 64 characters")
    bad = sorted({c for c in name if c in SPEAKER_FORBIDDEN or not c.isprintable()})
    if bad:
        raise EditError(f"a speaker name cannot contain {' '.join(SPEAKER_FORBIDDEN)} or control characters "
                        "(names become file names and appear in the page)")
    return name


def _with(doc: Doc, segments=None, speakers=None, reviewed=None, next_id=None, aliases=None) -> Doc:
    return _make(
        doc.duration,
        doc.segments if segments is None else segments,
        doc.speakers if speakers is None else speakers,
        doc.reviewed if reviewed is None else reviewed,
        doc.next_id if next_id is None else next_id,
        doc.aliases if aliases is None else aliases,
    )


# -------------------------------------------------------------------- segment operations
def add_segment(doc: Doc, start, end, speaker) -> tuple[Doc, int]:
    """Add a turn; returns the new doc and the new segment's id."""
    a, b = check_times(doc, start, end)
    spk = check_speaker(speaker)
    seg = Seg(doc.next_id, a, b, spk)
    return _replace_seg(_with(doc, segments=doc.segments + (seg,), next_id=doc.next_id + 1), seg), seg.id


def delete_segment(doc: Doc, seg_id) -> Doc:
    seg = doc.get(seg_id)
    return _with(doc, segments=tuple(s for s in doc.segments if s.id != seg.id))


def move_segment(doc: Doc, seg_id, start, end) -> Doc:
    """Move and/or resize a turn to [start, end]."""
    seg = doc.get(seg_id)
    a, b = check_times(doc, start, end)
    if (a, b) == (seg.start, seg.end):
        raise EditError("the segment already has these times")
    return _replace_seg(doc, replace(seg, start=a, end=b))


def shift_segment(doc: Doc, seg_id, delta) -> Doc:
    """Move a turn by `delta` seconds, keeping its length (stops at the recording's edges)."""
    seg = doc.get(seg_id)
    d = _number(delta, "shift")
    d = min(max(d, -seg.start), doc.duration - seg.end)
    if abs(d) < 1e-6:
        raise EditError("the segment is already at the edge of the recording")
    return _replace_seg(doc, replace(seg, start=_t(seg.start + d), end=_t(seg.end + d)))


def drag_segment(doc: Doc, seg_id, start, end, speaker) -> Doc:
    """A timeline gesture in one step: new times and/or another speaker's lane (resize, move, reassign)."""
    seg = doc.get(seg_id)
    a, b = check_times(doc, start, end)
    spk = check_speaker(speaker)
    if spk not in doc.speakers:
        raise EditError(f"unknown speaker {spk}")
    if (a, b, spk) == (seg.start, seg.end, seg.speaker):
        raise EditError("the segment did not change")
    return _replace_seg(doc, replace(seg, start=a, end=b, speaker=spk))


def split_segment(doc: Doc, seg_id, at) -> tuple[Doc, int]:
    """Split a turn in two at time `at`; returns the doc and the id of the second half."""
    seg = doc.get(seg_id)
    t = _t(_number(at, "split time"))
    if not (seg.start + MIN_DURATION <= t <= seg.end - MIN_DURATION):
        raise EditError(
            f"split time {t:.3f} s is not inside the segment ({seg.start:.3f}-{seg.end:.3f} s)"
        )
    first = replace(seg, end=t)
    second = Seg(doc.next_id, t, seg.end, seg.speaker)
    segs = tuple(s for s in doc.segments if s.id != seg.id) + (first, second)
    return _with(doc, segments=segs, next_id=doc.next_id + 1), second.id


def set_speaker(doc: Doc, seg_id, speaker) -> Doc:
    seg = doc.get(seg_id)
    spk = check_speaker(speaker)
    if spk == seg.speaker:
        raise EditError(f"the segment is already assigned to {spk}")
    return _replace_seg(doc, replace(seg, speaker=spk))


def _replace_seg(doc: Doc, seg: Seg) -> Doc:
    """Put `seg` in place of the turn with its id; turns of the same speaker that it now overlaps are
    joined into it (a speaker never overlaps themself: that would be counted as overlapped speech and
    exported as duplicate turns). Turns that only touch stay apart (a split's two halves)."""
    own = [s for s in doc.segments if s.id != seg.id and s.speaker == seg.speaker
           and s.start < seg.end and s.end > seg.start]
    if own:
        seg = replace(seg, start=min([seg.start] + [s.start for s in own]), end=max([seg.end] + [s.end for s in own]))
    gone = {s.id for s in own}
    return _with(doc, segments=tuple(seg if s.id == seg.id else s for s in doc.segments if s.id not in gone))


# -------------------------------------------------------------------- speaker operations
def add_speaker(doc: Doc, name) -> Doc:
    spk = check_speaker(name)
    if spk in doc.speakers:
        raise EditError(f"speaker {spk} already exists")
    return _with(doc, speakers=doc.speakers + (spk,))


def new_speaker_name(doc: Doc) -> str:
    k = len(doc.speakers)
    while f"SPEAKER_{k:02d}" in doc.speakers:
        k += 1
    return f"SPEAKER_{k:02d}"


def rename_speaker(doc: Doc, old, new) -> Doc:
    """Rename a speaker everywhere (its lane keeps its place)."""
    old = str(old or "")
    if old not in doc.speakers:
        raise EditError(f"no speaker named '{old}'")
    new = check_speaker(new)
    if new == old:
        raise EditError("the new name is the same as the old one")
    if new in doc.speakers:
        raise EditError(f"speaker {new} already exists: use 'Merge speakers' to join {old} into it")
    segs = tuple(replace(s, speaker=new) if s.speaker == old else s for s in doc.segments)
    lanes = tuple(new if x == old else x for x in doc.speakers)
    aliases = tuple((m, new if cur == old else cur) for m, cur in doc.aliases)
    return _with(doc, segments=segs, speakers=lanes, aliases=aliases)


def merge_speakers(doc: Doc, keep, absorb) -> Doc:
    """Give all of `absorb`'s turns to `keep` and remove `absorb`'s lane.

    Turns of the two speakers that now overlap or touch are joined into one.
    """
    keep, absorb = str(keep or ""), str(absorb or "")
    for name in (keep, absorb):
        if name not in doc.speakers:
            raise EditError(f"no speaker named '{name}'")
    if keep == absorb:
        raise EditError("choose two different speakers to merge")
    others = [s for s in doc.segments if s.speaker not in (keep, absorb)]
    mine = sorted((s for s in doc.segments if s.speaker in (keep, absorb)), key=lambda s: (s.start, s.end))
    merged: list[Seg] = []
    for s in mine:
        if merged and s.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Seg(last.id, last.start, max(last.end, s.end), keep)
        else:
            merged.append(Seg(s.id, s.start, s.end, keep))
    lanes = tuple(x for x in doc.speakers if x != absorb)
    aliases = tuple((m, keep if cur == absorb else cur) for m, cur in doc.aliases)
    return _with(doc, segments=others + merged, speakers=lanes, aliases=aliases)


# -------------------------------------------------------------------- reviewed regions
def _union(regions) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in regions):
        if b <= a:
            continue
        if out and a <= out[-1][1] + 1e-9:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(_t(a), _t(b)) for a, b in out]


def mark_reviewed(doc: Doc, start, end) -> Doc:
    a, b = check_times(doc, start, end)
    new = _union(list(doc.reviewed) + [(a, b)])
    if tuple(new) == doc.reviewed:
        raise EditError(f"{a:.3f}-{b:.3f} s is already marked as reviewed")
    return _with(doc, reviewed=new)


def unmark_reviewed(doc: Doc, start, end) -> Doc:
    a, b = check_times(doc, start, end)
    out = []
    for s, e in doc.reviewed:
        if e <= a or s >= b:
            out.append((s, e))
            continue
        if s < a:
            out.append((s, a))
        if e > b:
            out.append((b, e))
    if tuple(_union(out)) == doc.reviewed:
        raise EditError(f"nothing in {a:.3f}-{b:.3f} s was marked as reviewed")
    return _with(doc, reviewed=out)


# -------------------------------------------------------------------- navigation helpers
def starts(doc: Doc) -> list[float]:
    return [s.start for s in doc.segments]


def next_segment(doc: Doc, current_id=None, t: float = 0.0, step: int = 1) -> Seg | None:
    """The turn after (step=1) or before (step=-1) the current one, or near time t if none is selected."""
    if not doc.segments:
        return None
    if current_id is not None and doc.has(current_id):
        pos = doc.segments.index(doc.get(current_id)) + step
    else:
        pos = bisect.bisect_left(starts(doc), float(t) - 1e-9)
        pos = pos if step > 0 else pos - 1
    pos = min(max(pos, 0), len(doc.segments) - 1)
    return doc.segments[pos]


def segment_at(doc: Doc, t: float, speaker: str | None = None) -> Seg | None:
    """The (shortest) turn containing time t, optionally of one speaker."""
    hits = [s for s in doc.segments if s.start <= t <= s.end and (speaker is None or s.speaker == speaker)]
    return min(hits, key=lambda s: s.duration) if hits else None


def overlaps(doc: Doc) -> list[tuple[float, float]]:
    """Regions where two or more speakers are marked active (sweep over turn boundaries)."""
    events = []
    for s in doc.segments:
        events.append((s.start, 1))
        events.append((s.end, -1))
    events.sort(key=lambda e: (e[0], e[1]))
    out, active, since = [], 0, 0.0
    for t, d in events:
        if d > 0:
            active += 1
            if active == 2:
                since = t
        else:
            if active == 2 and t > since:
                out.append((since, t))
            active -= 1
    return _union(out)
