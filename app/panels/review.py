"""Reviewed-part panel: mark the visible window or start-end as reviewed, or unmark it. The reviewed
part is what the UEM export lists and what retraining learns from."""

from __future__ import annotations

import gradio as gr

from app import edits
from app.panels.edit import edit_endpoint
from app.panels.ui import EDIT_QUEUE, UI


def layout(ui: UI) -> None:
    with gr.Accordion("Reviewed part (exported as UEM, used for retraining)", open=True):
        gr.Markdown("When you have checked a stretch of the meeting, mark it: *view* = the "
                    "visible window (key R), *start-end* = the two fields above. Only "
                    "reviewed parts are exported as UEM and used for retraining.")
        with gr.Row():
            ui.review_view_btn = gr.Button("Mark view as reviewed", elem_id="review_view_btn")
            ui.review_btn = gr.Button("Mark start-end as reviewed", elem_id="review_btn")
            ui.unreview_btn = gr.Button("Unmark start-end", elem_id="unreview_btn")


def wire(ui: UI) -> None:
    edit_endpoint(ui, "mark_reviewed", "review", lambda a, b: (a, b), [ui.sel_start, ui.sel_end], ui.review_btn.click)
    edit_endpoint(ui, "unmark_reviewed", "unreview", lambda a, b: (a, b), [ui.sel_start, ui.sel_end],
                  ui.unreview_btn.click)

    @ui.guard
    def review_view(S):
        edits.apply(S, "review", S.t0, S.t1)
        return ui.view(S)

    ui.review_view_btn.click(review_view, [], ui.VIEW, api_name="review_view", trigger_mode="multiple", **EDIT_QUEUE)
