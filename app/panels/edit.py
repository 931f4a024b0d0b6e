"""Edit panel: the selected segment (start, end, speaker, the cursor) and the buttons that change it,
step to the previous / next segment, undo, redo and reset. Behaviour: app/edits.py."""

from __future__ import annotations

import inspect
from typing import Callable

import gradio as gr

from app import edits
from app.panels.timeline import nav_handler
from app.panels.ui import EDIT_QUEUE, UI
from app.session import Session


def layout(ui: UI) -> None:
    """The inspector, a narrow column beside the timeline: fields two by two, buttons small."""
    ui.sel_info = gr.Markdown("No segment selected.", elem_id="sel_info")
    with gr.Row():
        ui.sel_start = gr.Number(label="start (s)", precision=3, elem_id="sel_start", min_width=140)
        ui.sel_end = gr.Number(label="end (s)", precision=3, elem_id="sel_end", min_width=140)
        ui.sel_speaker = gr.Dropdown(label="speaker", choices=[], allow_custom_value=True, elem_id="sel_speaker",
                                     min_width=140)
        ui.cursor = gr.Number(label="cursor (s)", precision=3, elem_id="cursor", min_width=140)
    with gr.Row():
        ui.apply_btn = gr.Button("Apply start/end", size="sm", elem_id="apply_btn", min_width=90)
        ui.speaker_btn = gr.Button("Set speaker", size="sm", elem_id="speaker_btn", min_width=80)
        ui.split_btn = gr.Button("Split at cursor", size="sm", elem_id="split_btn", min_width=90)
    with gr.Row():
        ui.add_btn = gr.Button("Add as new segment", size="sm", elem_id="add_btn", min_width=120)
        ui.delete_btn = gr.Button("Delete", size="sm", variant="stop", elem_id="delete_btn", min_width=60)
        ui.reset_btn = gr.Button("Reset to model", size="sm", elem_id="reset_btn", min_width=60)
    with gr.Row():
        ui.prev_btn = gr.Button("◀ prev", size="sm", elem_id="prev_btn", min_width=50)
        ui.next_btn = gr.Button("next ▶", size="sm", elem_id="next_btn", min_width=50)
        ui.undo_btn = gr.Button("Undo", size="sm", elem_id="undo_btn", min_width=50)
        ui.redo_btn = gr.Button("Redo", size="sm", elem_id="redo_btn", min_width=50)


def render(S: Session) -> tuple:
    """The selection's description, its start / end / speaker fields, and the cursor."""
    speakers = list(S.history.doc.speakers) if S.history else []
    seg = None
    if S.history and S.selected is not None and S.history.doc.has(S.selected):
        seg = S.history.doc.get(S.selected)
    info = (f"Selected segment **#{seg.id}**: speaker **{seg.speaker}** "
            f"({speakers.index(seg.speaker) + 1}), {seg.start:.3f}-{seg.end:.3f} s "
            f"({seg.duration:.2f} s)." if seg else "No segment selected: click one on the timeline.")
    return (info, seg.start if seg else None, seg.end if seg else None,
            gr.Dropdown(choices=speakers, value=seg.speaker if seg else None), round(S.cursor, 3))


def edit_endpoint(ui: UI, fn_name: str, name: str, build_args: Callable, inputs: list, trigger: Callable) -> None:
    """Wire one edit (edits.apply(name, *build_args(*input values))) as the endpoint `fn_name`."""
    def handler(S, *values):
        edits.apply(S, name, *build_args(*values))
        return ui.view(S)

    handler.__signature__ = inspect.Signature(
        [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
         for p in ["S"] + [f"v{i}" for i in range(len(inputs))]])
    handler.__name__ = fn_name
    trigger(ui.guard(handler), inputs, ui.VIEW, api_name=fn_name, trigger_mode="multiple", **EDIT_QUEUE)


def wire(ui: UI) -> None:
    VIEW = ui.VIEW
    for btn, name, action in [(ui.next_btn, "next_segment", "next"), (ui.prev_btn, "previous_segment", "prev")]:
        btn.click(nav_handler(ui, name, action), [], VIEW + [ui.player], api_name=name, trigger_mode="multiple",
                  show_progress="hidden")

    edit_endpoint(ui, "add_segment", "add", lambda a, b, spk: (a, b, spk), [ui.sel_start, ui.sel_end, ui.sel_speaker],
                  ui.add_btn.click)
    edit_endpoint(ui, "move_segment", "move", lambda a, b: (a, b), [ui.sel_start, ui.sel_end], ui.apply_btn.click)
    edit_endpoint(ui, "set_speaker", "set_speaker", lambda spk: (spk,), [ui.sel_speaker], ui.speaker_btn.click)
    edit_endpoint(ui, "split_segment", "split", lambda t: (t,), [ui.cursor], ui.split_btn.click)
    edit_endpoint(ui, "delete_segment", "delete", lambda: (), [], ui.delete_btn.click)

    for btn, fn_name, step, mode in [(ui.undo_btn, "undo", edits.undo, "multiple"),
                                     (ui.redo_btn, "redo", edits.redo, "multiple"),
                                     (ui.reset_btn, "reset", edits.reset, "once")]:
        btn.click(history_handler(ui, fn_name, step), [], VIEW, api_name=fn_name, trigger_mode=mode, **EDIT_QUEUE)


def history_handler(ui: UI, fn_name: str, step: Callable):
    """The handler of Undo, Redo or Reset."""
    @ui.guard
    def handler(S):
        step(S)
        return ui.view(S)

    handler.__name__ = fn_name
    return handler
