"""Meetings panel: open the demo meeting, upload a recording, switch between the workspace's
meetings, the summary of the open one; and the session's start ("Welcome back"). Behaviour:
app/meetings.py."""

from __future__ import annotations

import gradio as gr

from app import meetings, models
from app.panels.listen import empty_player
from app.panels.models import render_list as model_list
from app.panels.ui import UI
from app.session import Session


def layout(ui: UI) -> None:
    """The toolbar's meeting part: the demo button (a bordered button of its own, not a group's
    header), a low upload box and the meeting list, side by side."""
    ui.demo_btn = gr.Button("Open demo meeting", variant="secondary", elem_id="demo_btn", scale=0, min_width=150)
    ui.upload = gr.File(label=f"Upload (max {ui.settings.max_upload_mb:g} MB)",
                        file_types=list(meetings.AUDIO_SUFFIXES), type="filepath", elem_id="upload", height=100,
                        scale=0, min_width=210)
    ui.meeting_dd = gr.Dropdown(label="Meeting", choices=[], elem_id="meeting_dd",
                                interactive=True, scale=1, min_width=130)


def layout_summary(ui: UI) -> None:
    ui.summary = gr.Markdown("No meeting open.", elem_id="summary")


def render(S: Session) -> tuple:
    return (meetings.summary(S),)


def render_list(S: Session) -> tuple:
    """The meeting list, the open meeting chosen."""
    return (gr.Dropdown(choices=meetings.meeting_choices(S), value=S.meeting.id if S.meeting else None),)


def wire(ui: UI, demo: gr.Blocks) -> None:
    VIEW, LISTS, PLAYERS = ui.VIEW, ui.LISTS, ui.PLAYERS

    @ui.guard
    def open_session(S):
        if S.meeting is not None:
            S.message = f"Welcome back: restored **{S.meeting.name}** with your edits."
        return ui.view(S) + render_list(S) + model_list(S, models.choice_of_run(S))

    demo.load(open_session, [], VIEW + LISTS, api_visibility="private")

    @ui.guard
    def upload_meeting(S, path):
        with ui.access.upload(S.sid, path) as received:  # only this session's own upload
            meetings.add_audio(S, received, received.name)
        return ui.view(S) + ui.lists(S) + (empty_player(), empty_player(), None)

    ui.upload.upload(upload_meeting, [ui.upload], VIEW + LISTS + PLAYERS + [ui.upload], api_name="upload_meeting")

    @ui.guard
    def open_demo(S):
        meetings.open_demo(S)
        return ui.view(S) + ui.lists(S) + (empty_player(), empty_player())

    ui.demo_btn.click(open_demo, [], VIEW + LISTS + PLAYERS, api_name="open_demo")

    @ui.guard
    def switch_meeting(S, mid):
        if mid and not (S.meeting and S.meeting.id == mid):
            S.open_meeting(mid)
        return ui.view(S) + (empty_player(), empty_player())

    ui.meeting_dd.input(switch_meeting, [ui.meeting_dd], VIEW + PLAYERS, api_name="switch_meeting")

    @ui.guard
    def refresh(S):
        return ui.view(S) + ui.lists(S)

    refresh_btn = gr.Button(visible=False)
    refresh_btn.click(refresh, [], VIEW + LISTS, api_name="refresh")
