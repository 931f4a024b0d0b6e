"""Retraining on the user's corrections (the Retrain panel's behaviour, no gradio): manifests from
the reviewed parts of every meeting of the workspace with the last part of each held out,
fine-tuning with core.training, a new model version, and before/after scores on the held-out part."""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.editing import Doc
from app.exports import to_annotation
from app.runs import run_model
from app.timefmt import fmt_regions
from app.workspace import Meeting, Workspace
from core.errors import PixitError

if TYPE_CHECKING:
    from app.session import Session

SCORE_HEADERS = ["model", "DER %", "false alarm %", "missed %", "confusion %", "scored s"]


@dataclass
class Retrained:
    """What a retraining made: the new version's id, a note for the user, the score rows."""

    version: str
    note: str
    table: list[list]


def corrected_meetings(ws: Workspace) -> list[tuple[Meeting, Doc]]:
    """The meetings of `ws` with at least 2 s marked as reviewed, and their edits."""
    out = []
    for m in ws.meetings():
        doc, _ = m.load_doc()
        if doc is not None and doc.reviewed and doc.reviewed_total() >= 2.0:
            out.append((m, doc))
    return out


def build_manifests(ws: Workspace, out: Path, heldout: float = 0.2) -> tuple[Path, Path, list[str]]:
    """Train/held-out manifests from the reviewed parts of the corrected meetings.

    The last `heldout` fraction (in time) of each meeting's reviewed region is held out."""
    from core.annotation import rttm_text

    meetings = corrected_meetings(ws)
    if not meetings:
        raise PixitError("no corrected meeting yet: review part of a meeting and mark it as reviewed "
                         "(Edit tab > 'Mark view as reviewed', or key R) before retraining")
    out.mkdir(parents=True, exist_ok=True)
    train_rows, held_rows, notes = ["audio,rttm,uem"], ["audio,rttm,uem"], []
    for m, doc in meetings:
        train_uem, held_uem = split_reviewed(doc.reviewed, heldout)
        rttm = out / f"{m.id}.rttm"
        rttm.write_text(rttm_text(to_annotation(doc, m.uri), m.uri))
        tu, hu = out / f"{m.id}.train.uem", out / f"{m.id}.heldout.uem"
        tu.write_text("".join(f"{m.uri} 1 {a:.3f} {b:.3f}\n" for a, b in train_uem))
        hu.write_text("".join(f"{m.uri} 1 {a:.3f} {b:.3f}\n" for a, b in held_uem))
        if train_uem:
            train_rows.append(f"{m.audio},{rttm},{tu}")
        if held_uem:
            held_rows.append(f"{m.audio},{rttm},{hu}")
        notes.append(f"{m.name}: trained on {fmt_regions(train_uem)}, held out {fmt_regions(held_uem)}")
    if len(train_rows) == 1:
        raise PixitError("the reviewed parts are too short to train on")
    tm, hm = out / "train.csv", out / "heldout.csv"
    tm.write_text("\n".join(train_rows) + "\n")
    hm.write_text("\n".join(held_rows) + "\n")
    return tm, hm, notes


def check_request(S: Session, lr: float, steps: int, heldout: float) -> None:
    """Refuse a retraining that cannot run, before anything is made."""
    if S.meeting is None:
        raise PixitError("open a meeting first")
    if not (0.0 < heldout < 0.9):
        raise PixitError("held-out fraction must be between 0 and 0.9")
    cap = int(S.settings.max_retrain_steps)
    if not (1 <= int(steps) <= cap):
        raise PixitError(f"steps must be between 1 and {cap} on this server (pixit app --max-retrain-steps)")
    if not (0 < float(lr) < 1):
        raise PixitError("learning rate must be between 0 and 1")


def retrain(S: Session, model: str, model_label: str, lr: float, steps: int, heldout: float,
            progress=None, should_stop=None) -> Retrained:
    """Fine-tune `model` on the corrections, register the new version, re-run and score it."""
    from core.training import TrainConfig, train

    progress = progress or (lambda f, m="": None)
    check_request(S, lr, steps, heldout)
    vid, vdir = S.ws.new_version_dir()
    try:
        train_csv, held_csv, notes = build_manifests(S.ws, vdir / "data", heldout)
    except PixitError:
        shutil.rmtree(vdir, ignore_errors=True)
        raise
    cfg = train_config(TrainConfig, lr=float(lr), steps=int(steps), **(S.settings.train_overrides or {}))
    progress(0.0, "fine-tuning")
    try:
        result = train(train_csv, vdir / "run", init=model, config=cfg,
                       progress=lambda f, m="": progress(0.75 * f, m or "fine-tuning"), should_stop=should_stop)
    except BaseException:
        shutil.rmtree(vdir, ignore_errors=True)
        raise
    model_dir = Path(result.model_dir)
    info = {"id": vid, "path": str(model_dir), "parent": model_label, "created": time.time(), "lr": float(lr),
            "steps": int(steps), "heldout": heldout, "notes": notes}
    S.ws.add_version(info)
    # score before (the model output the user corrected) and after (a new run) on the held-out part
    before_doc = S.history.original
    progress(0.78, "re-running the new model on the meeting")
    prev = S.run.info if S.run else {}
    run_model(S, str(model_dir), vid, num_speakers=prev.get("num_speakers"),
              min_speakers=prev.get("min_speakers"), max_speakers=prev.get("max_speakers"),
              progress=lambda f, m="": progress(0.78 + 0.2 * f, m), should_stop=should_stop)
    after_doc = S.history.original
    held = split_reviewed(S.doc.reviewed, heldout)[1]
    table = score_table(S.doc, {f"before ({model_label})": before_doc, f"after ({vid})": after_doc},
                        held, S.meeting.uri)
    note = (f"New model version **{vid}** (fine-tuned from {model_label}, {int(steps)} steps, "
            f"lr {float(lr):g}). Scored on the held-out part of **{S.meeting.name}**: "
            f"{fmt_regions(held)} (the last {int(heldout * 100)}% of the reviewed region, "
            f"never seen in training). " + " ".join(notes))
    S.message = note
    progress(1.0, "done")
    return Retrained(vid, note, table)


def split_reviewed(reviewed, heldout: float) -> tuple[list, list]:
    """Split reviewed regions in time: the last `heldout` fraction of their total length is held out."""
    total = sum(b - a for a, b in reviewed)
    cut_len = total * (1.0 - heldout)
    train, held, acc = [], [], 0.0
    for a, b in reviewed:
        if acc + (b - a) <= cut_len:
            train.append((a, b))
        elif acc >= cut_len:
            held.append((a, b))
        else:
            c = a + (cut_len - acc)
            train.append((a, round(c, 3)))
            held.append((round(c, 3), b))
        acc += b - a
    return [r for r in train if r[1] - r[0] > 1e-3], [r for r in held if r[1] - r[0] > 1e-3]


def score_table(reference: Doc, hypotheses: dict[str, Doc], uem_regions, uri: str) -> list[list]:
    """Rows [model, DER %, false alarm %, missed %, confusion %, scored seconds]."""
    from pyannote.core import Segment, Timeline

    from core.metrics import diarization_error

    uem = Timeline([Segment(a, b) for a, b in uem_regions], uri=uri)
    ref = to_annotation(reference, uri)
    rows = []
    for name, hyp in hypotheses.items():
        r = diarization_error(ref, to_annotation(hyp, uri), uem=uem)
        total = float(r.get("total", 0.0)) or 1e-9
        rows.append([name, round(100 * float(r["der"]), 2), round(100 * r["false_alarm"] / total, 2),
                     round(100 * r["missed_detection"] / total, 2), round(100 * r["confusion"] / total, 2),
                     round(sum(b - a for a, b in uem_regions), 2)])
    return rows


def train_config(cls, lr: float, steps: int, **extra):
    """A TrainConfig with the learning rate and step count set, whatever the field names are."""
    names = {f.name for f in dataclasses.fields(cls)}
    kw = {k: v for k, v in extra.items() if k in names}
    for cand in ("lr", "learning_rate"):
        if cand in names:
            kw[cand] = lr
            break
    for cand in ("max_steps", "steps"):
        if cand in names:
            kw[cand] = steps
            break
    return cls(**kw)
