"""Models panel: the model list (startup model, server models, Hugging Face cache, retrained
versions), the box for a Hub id or a served folder name, and sharing a model on the Hub.
Behaviour: app/models.py."""

from __future__ import annotations

import gradio as gr

from app import models
from app.panels.ui import UI
from app.session import Session


def layout_picker(ui: UI) -> None:
    """The model list (in the toolbar)."""
    ui.model_dd = gr.Dropdown(label="Model", choices=models.startup_choices(ui.settings), value="startup",
                              elem_id="model_dd", interactive=True, scale=1, min_width=140)


def layout_by_name(ui: UI) -> None:
    """The box for a model by name (a tab: rarely needed, it would crowd the toolbar)."""
    gr.Markdown("A model that is not in the toolbar's list: this box overrides the list for **Run model**.")
    ui.model_path = gr.Textbox(label="...or a Hugging Face Hub id, or a model folder of the server's "
                                     "--models folders by name", placeholder="org/name[@revision]",
                               elem_id="model_path")


def layout_share(ui: UI) -> None:
    with gr.Accordion("Share the selected model on the Hugging Face Hub", open=False):
        with gr.Row():
            ui.share_repo = gr.Textbox(label="repo (org/name)", elem_id="share_repo")
            ui.share_private = gr.Checkbox(value=True, label="private", elem_id="share_private")
        ui.share_btn = gr.Button("Share with a model card (uses the server's Hugging Face login)",
                                 elem_id="share_btn")


def render_list(S: Session, value: str | None = None) -> tuple:
    """The model list of the session (with `value` chosen, else the choice is left as it is)."""
    if value is None:
        return (gr.Dropdown(choices=models.model_choices(S)),)
    return (gr.Dropdown(choices=models.model_choices(S), value=value),)


def wire(ui: UI) -> None:
    @ui.guard
    def share(S, model_choice, model_folder, repo, private):
        return models.share(S, *models.resolve_model(S, model_choice, model_folder), repo, private)

    ui.share_btn.click(share, [ui.model_dd, ui.model_path, ui.share_repo, ui.share_private], [ui.status],
                       api_name="share")
