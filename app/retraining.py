"""Retraining on the user's corrections (the Retrain panel's behaviour, no gradio): manifests from
the reviewed parts of every meeting of the workspace with the last part of each held out,
fine-tuning with core.finetune (the defaults of `pixit train --init`), a new model version, and
core.adoption's decision whether it becomes current (before / after on the held-out part)."""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.editing import Doc
from app.exports import to_annotation
from app.timefmt import fmt_regions
from app.workspace import Meeting, Workspace
from core.errors import PixitError
from core.finetune import FinetuneSettings

if TYPE_CHECKING:
    from app.session import Session



@dataclass
class Retrained:
    """What a retraining made: the new version's id, a note for the user, the score rows."""

    version: str
    note: str
    table: list[list]  # core.adoption.SCORE_HEADERS rows
    adopted: bool  # whether the new version became current


def corrected_meetings(ws: Workspace) -> list[tuple[Meeting, Doc]]:
    """The meetings of `ws` with at least 2 s marked as reviewed, and their edits."""
    out = []
    for m in ws.meetings():
        doc, _, _ = m.load_doc()
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
                         "(tab 'Edit speakers, reviewed part' > 'Mark view as reviewed', or key R) before retraining")
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


def finetune_settings(S: Session, lr: float, steps: int) -> tuple[FinetuneSettings, dict]:
    """The Retrain button's settings: core.finetune's defaults (those of `pixit train --init`) with the
    panel's learning rate and steps, and the server's overrides (Settings.train_overrides: fields of
    FinetuneSettings, or of core.training.TrainConfig)."""
    extra = dict(S.settings.train_overrides or {})
    mine = {f.name for f in dataclasses.fields(FinetuneSettings)}
    settings = FinetuneSettings(**{k: v for k, v in extra.items() if k in mine}, lr=float(lr), steps=int(steps))
    return settings, {k: v for k, v in extra.items() if k not in mine}


def retrain(S: Session, model: str, model_label: str, lr: float, steps: int, heldout: float,
            progress=None, should_stop=None) -> Retrained:
    """Fine-tune `model` on the corrections into a new version; it becomes current only if it is better
    on the held-out part (and not worse on the regression set): core.adoption."""
    from core.adoption import decide
    from core.data import read_manifest
    from core.finetune import finetune

    progress = progress or (lambda f, m="": None)
    check_request(S, lr, steps, heldout)
    vid, vdir = S.ws.new_version_dir()
    try:
        train_csv, held_csv, notes = build_manifests(S.ws, vdir / "data", heldout)
        settings, overrides = finetune_settings(S, lr, steps)
        progress(0.0, f"fine-tuning {model_label}: {settings.steps} steps, about {estimate_minutes(settings)}")
        result = finetune(model, train_csv, vdir / "run", settings=settings,
                          progress=lambda f, m="": progress(0.8 * f, m), should_stop=should_stop, **overrides)
        held = read_manifest(held_csv)
        if not held:
            raise PixitError("nothing was held out to compare the models on: review more of the meeting")
        progress(0.8, "comparing the new model with the current one on the held-out part")
        decision = decide(model, result.model_dir, held, S.settings.regression, current_name=f"current ({model_label})",
                          new_name=f"new ({vid})", progress=lambda f, m="": progress(0.8 + 0.2 * f, m),
                          should_stop=should_stop, overrides=S.settings.params)
    except BaseException:
        shutil.rmtree(vdir, ignore_errors=True)
        raise
    info = {"id": vid, "path": str(result.model_dir), "parent": model_label, "created": time.time(),
            "lr": float(lr), "steps": result.steps, "best_step": result.best_step, "heldout": heldout,
            "notes": notes, "adopted": decision.adopt, "decision": decision.reason, "scores": decision.rows,
            "seconds": round(result.seconds, 1), "speakers": result.speakers}
    S.ws.add_version(info)
    where = (f"Trained on {'; '.join(notes)} (the last {int(heldout * 100)}% of the reviewed region held out, "
             f"never trained on). {result.steps} steps in {result.seconds / 60:.1f} min, best at step {result.best_step}."
             + (f" Known speakers (named when {vid} runs on your next meetings): {', '.join(result.speakers)}."
                if result.speakers else ""))
    if decision.adopt:
        note = f"New model version **{vid}** is now current: {decision.reason}. {where}"
    else:
        note = (f"New model version **{vid}** was made but **{model_label} stays current**: {decision.reason}. "
                f"You can still pick {vid} in the Model list. {where}")
    S.message = note
    progress(1.0, "done")
    return Retrained(vid, note, decision.rows, decision.adopt)


def estimate_minutes(settings: FinetuneSettings) -> str:
    """A rough duration in words, from the measured cost of a step of the shipped architecture on 2 CPU
    cores (tests/bench_retrain.py: ~2.5 s per step of 4 pairs, validation and re-tuning included)."""
    import torch

    per_step = 0.0 if torch.cuda.is_available() else 2.5 * settings.batch_size / 4
    minutes = (settings.steps or 60) * (per_step or 0.3) / 60 + 1.0
    return f"{minutes:.0f} min" if minutes >= 1.5 else "a minute"


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


def plain_progress(message: str) -> str:
    """A training progress line in plain words (the loss names go to the details view)."""
    import re

    if m := re.match(r"step (\d+)/(\d+)", message):
        return f"training step {m[1]} of {m[2]}"
    if m := re.match(r"(validating|validation) at step (\d+)", message):
        return f"checking the model at step {m[2]}"
    if message.startswith(("training on ", "no dev set", "done: ")):
        return "training"
    return message


def time_left(elapsed: float, fraction: float) -> str:
    """', about N min left' once enough of the work is done to tell."""
    if fraction < 0.1 or elapsed < 10:
        return ""
    left = elapsed * (1 - fraction) / fraction
    return f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"
