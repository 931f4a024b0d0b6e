"""Run panel: the number of speakers (auto, fixed, bounds), Run model and Stop. The run is a
background job with progress that waits for the shared model worker, saying for what (app/jobs.py);
behaviour: app/runs.py."""

from __future__ import annotations

import gradio as gr

from app import models, runs
from app.jobs import WORKER, Job
from app.panels.listen import empty_player
from app.panels.ui import UI, stop_work
from core.errors import Cancelled, PixitError


def layout(ui: UI) -> None:
    """The toolbar's run part: the speaker-count mode and its numbers, Run and Stop, in one line."""
    ui.spk_mode = gr.Radio(["auto", "fixed", "bounds"], value="auto", label="Speakers", elem_id="spk_mode",
                           scale=0, min_width=270)
    ui.n_spk = gr.Number(value=2, precision=0, label="fixed", minimum=1, maximum=20, min_width=72, scale=0)
    ui.min_spk = gr.Number(value=1, precision=0, label="min", minimum=1, maximum=20, min_width=72, scale=0)
    ui.max_spk = gr.Number(value=4, precision=0, label="max", minimum=1, maximum=20, min_width=72, scale=0)
    with gr.Column(scale=0, min_width=110, elem_id="run_col"):
        ui.run_btn = gr.Button("Run model", variant="primary", elem_id="run_btn")
        ui.stop_btn = gr.Button("Stop", variant="stop", size="sm", elem_id="stop_btn")


def speaker_kwargs(mode: str, n, lo, hi) -> dict:
    """The pipeline's speaker-count arguments for the chosen mode; a clear error for bad numbers."""
    def num(x, what):
        try:
            v = int(x)
        except (TypeError, ValueError):
            raise PixitError(f"{what} must be a whole number") from None
        if not 1 <= v <= 20:
            raise PixitError(f"{what} must be between 1 and 20")
        return v

    if mode == "fixed":
        return {"num_speakers": num(n, "number of speakers")}
    if mode == "bounds":
        a, b = num(lo, "min speakers"), num(hi, "max speakers")
        if a > b:
            raise PixitError(f"min speakers ({a}) is larger than max speakers ({b})")
        return {"min_speakers": a, "max_speakers": b}
    return {}


def wire(ui: UI) -> None:
    VIEW, LISTS, PLAYERS = ui.VIEW, ui.LISTS, ui.PLAYERS

    def run_model(model_choice, model_folder, mode, n, lo, hi, request: gr.Request, progress=gr.Progress()):
        def prepare(S):
            if S.meeting is None:
                raise PixitError("open a meeting first (upload one or click 'Open demo meeting')")
            return models.resolve_model(S, model_choice, model_folder), speaker_kwargs(mode, n, lo, hi)

        S, args, refusal = ui.start_job(request, "run", prepare)
        if refusal is not None:
            yield ui.refused(S, refusal, VIEW + LISTS + PLAYERS, "run_model")
            return
        (model, label), kw = args
        skip = tuple(gr.skip() for _ in VIEW + LISTS + PLAYERS)
        job = Job(lambda p, st: runs.run_model(S, model, label, progress=p, should_stop=st, **kw), S.stop,
                  WORKER, (S.sid, "model run"))
        with ui.background_job(S, job, "the model run"):
            try:
                for frac, msg in job.updates():
                    progress(frac, desc=msg)
                    line = (f"**{label}** on {S.meeting.name} is {msg}." if job.waiting else
                            f"Running **{label}** on {S.meeting.name}: {msg} ({frac:.0%}).")
                    yield (gr.skip(), f"{line} Press Stop to cancel.") + skip[2:]
                job.outcome()
            except Cancelled:
                S.message = "Stopped: the model run was cancelled; nothing changed."
        yield ui.view(S) + ui.lists(S) + (empty_player(), empty_player())

    ui.run_btn.click(run_model, [ui.model_dd, ui.model_path, ui.spk_mode, ui.n_spk, ui.min_spk, ui.max_spk],
                     VIEW + LISTS + PLAYERS, api_name="run_model", concurrency_id="gpu", concurrency_limit=None,
                     show_progress_on=[ui.timeline])

    ui.stop_btn.click(ui.guard(stop_work), [], [ui.status], api_name="stop", concurrency_limit=None)
