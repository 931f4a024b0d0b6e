"""Speakers panel: rename a speaker everywhere, merge one speaker into another (each one undoable edit)."""

from __future__ import annotations

import gradio as gr

from app.panels.edit import edit_endpoint
from app.panels.ui import UI
from app.session import Session


def layout(ui: UI) -> None:
    with gr.Accordion("Speakers: rename everywhere, merge two", open=True):
        with gr.Row():
            ui.spk_a = gr.Dropdown(label="speaker", choices=[], elem_id="spk_a")
            ui.new_name = gr.Textbox(label="new name", elem_id="new_name")
            ui.rename_btn = gr.Button("Rename everywhere", elem_id="rename_btn")
        with gr.Row():
            ui.spk_b = gr.Dropdown(label="merge this speaker...", choices=[], elem_id="spk_b")
            ui.spk_c = gr.Dropdown(label="...into this one", choices=[], elem_id="spk_c")
            ui.merge_btn = gr.Button("Merge speakers", elem_id="merge_btn")


def render(S: Session) -> tuple:
    """The three speaker lists (rename, merge from, merge into)."""
    speakers = list(S.history.doc.speakers) if S.history else []
    return tuple(gr.Dropdown(choices=speakers) for _ in range(3))


def wire(ui: UI) -> None:
    edit_endpoint(ui, "rename_speaker", "rename", lambda a, b: (a, b), [ui.spk_a, ui.new_name], ui.rename_btn.click)
    edit_endpoint(ui, "merge_speakers", "merge", lambda absorb, keep: (keep, absorb), [ui.spk_b, ui.spk_c],
                  ui.merge_btn.click)
