"""Retrain panel: fine-tune the model on the reviewed parts of the workspace's meetings, compare
before / after on the held-out part, Stop. A thin call into app/retraining.py (core.training)."""

from __future__ import annotations

import time

import gradio as gr
import pandas as pd

from app import models, retraining
from app.jobs import WORKER, Job
from app.panels.listen import empty_player
from app.panels.meetings import render_list as meeting_list
from app.panels.models import layout_share, render_list as model_list
from app.panels.ui import UI, stop_work
from core.adoption import SCORE_HEADERS
from core.errors import Cancelled, PixitError
from core.finetune import FinetuneSettings


def layout(ui: UI) -> None:
    max_steps = ui.settings.max_retrain_steps
    defaults = FinetuneSettings()
    gr.Markdown(
        "Fine-tune the current model on your corrections (the reviewed parts of every meeting in "
        "this workspace): about " + retraining.estimate_minutes(defaults) + " with the defaults. The **last part "
        "of each reviewed region is held out** (not trained on) and used to compare the new model with the "
        "current one. The new version becomes current **only if it is better there** (and not worse on the "
        "demo meeting); otherwise the current model stays and the table shows why. Every version stays "
        "in the Model list. Editing goes on while it trains.")
    with gr.Row():
        ui.lr = gr.Number(value=defaults.lr, label="learning rate", elem_id="lr")
        ui.steps = gr.Number(value=min(defaults.steps, max_steps), precision=0, label=f"steps (at most {max_steps})",
                             minimum=1, maximum=max_steps, elem_id="steps")
        ui.heldout = gr.Slider(5, 50, value=20, step=5, label="held-out part of the reviewed region (%)",
                               elem_id="heldout")
    with gr.Row():
        ui.retrain_btn = gr.Button("Retrain on my corrections", variant="primary", elem_id="retrain_btn")
        ui.retrain_stop = gr.Button("Stop retraining", variant="stop", elem_id="retrain_stop")
    ui.retrain_note = gr.Markdown("", elem_id="retrain_note")
    ui.retrain_table = gr.Dataframe(headers=SCORE_HEADERS, interactive=False, elem_id="retrain_table",
                                    label="Current and new model on the held-out part and the regression set")
    with gr.Accordion("Training details (losses)", open=False):
        ui.retrain_log = gr.Markdown("", elem_id="retrain_log")
    layout_share(ui)


def wire(ui: UI) -> None:
    outs = ui.VIEW + ui.LISTS + ui.PLAYERS + [ui.retrain_note, ui.retrain_table, ui.retrain_log]

    def retrain(model_choice, model_folder, lr_, steps_, heldout_, request: gr.Request, progress=gr.Progress()):
        def prepare(S):
            if S.meeting is None:
                raise PixitError("open a meeting first")
            if not retraining.corrected_meetings(S.ws):
                raise PixitError("no corrected meeting yet: review part of a meeting, mark it as reviewed "
                                 "(tab 'Edit speakers, reviewed part' > 'Mark view as reviewed', or key R), "
                                 "then retrain")
            try:
                numbers = float(lr_), int(steps_), float(heldout_) / 100.0
            except (TypeError, ValueError):
                raise PixitError("learning rate and steps must be numbers") from None
            retraining.check_request(S, *numbers)
            return models.resolve_model(S, model_choice, model_folder), numbers

        S, args, refusal = ui.start_job(request, "retrain", prepare)
        if refusal is not None:
            yield ui.refused(S, refusal, outs, "retrain")
            return
        (model, label), (lr_v, steps_v, held) = args
        skip = [gr.skip() for _ in outs]
        job = Job(lambda p, st: retraining.retrain(S, model, label, lr_v, steps_v, held, progress=p, should_stop=st),
                  S.stop, WORKER, (S.sid, "retraining"))
        done, details, started = None, [], time.monotonic()
        with ui.background_job(S, job, "retraining"):
            try:
                for frac, msg in job.updates():
                    if job.waiting:
                        started = time.monotonic()  # the time left counts from the start of the training
                    plain = msg if job.waiting else (retraining.plain_progress(msg)
                                                     + retraining.time_left(time.monotonic() - started, frac))
                    progress(frac, desc=plain)
                    upd = list(skip)
                    upd[outs.index(ui.retrain_note)] = f"Retraining from **{label}**: {plain} ({frac:.0%}). Stop cancels it."
                    if plain != msg:
                        details = (details + [msg])[-8:]
                        upd[outs.index(ui.retrain_log)] = "\n\n".join(details)
                    yield tuple(upd)
                done = job.outcome()
            except Cancelled:
                S.message = "Retraining stopped; no new model version was made."
        if done is None:
            yield ui.view(S) + ui.lists(S) + (empty_player(), empty_player()) + (S.message, gr.skip(), gr.skip())
            return
        table = pd.DataFrame(done.table, columns=SCORE_HEADERS)
        yield (ui.view(S) + meeting_list(S) + model_list(S, f"version:{done.version}" if done.adopted else None)
               + (empty_player(), empty_player()) + (done.note, table, gr.skip()))

    ui.retrain_btn.click(retrain, [ui.model_dd, ui.model_path, ui.lr, ui.steps, ui.heldout], outs,
                         api_name="retrain", concurrency_id="gpu", concurrency_limit=None,
                         show_progress_on=[ui.retrain_table])

    ui.retrain_stop.click(ui.guard(stop_work), [], [ui.status], api_name="stop_retrain", concurrency_limit=None)
