"""Timeline panel: the status line, the plotly timeline and the pan / zoom / unsure buttons.

On the timeline a click selects a segment or sets the cursor; on a speaker lane a drag resizes,
moves, reassigns or draws a segment (timeline.js, applied by app/gestures.py); on the waveform and
activation rows a drag zooms; a double-click shows the whole meeting.
Behaviour: app/timeline.py; the figure: app/figures.py."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app import gestures, timeline
from app.figures import FigureJSON
from app.panels import transport
from app.panels.listen import solo_clip
from app.panels.ui import EDIT_QUEUE, UI
from app.session import Session

# the timeline's mouse: clicks, zooms and the drag gestures (attached to the plotly div after each redraw)
PLOT_JS = (Path(__file__).with_name("timeline.js")).read_text()


def layout(ui: UI) -> None:
    with gr.Row(equal_height=True):
        ui.status = gr.Markdown("", elem_id="status")
        transport.layout(ui)
    ui.timeline = gr.Plot(label="Timeline", show_label=False, elem_id="timeline")
    with gr.Row():
        ui.pan_l = gr.Button("◀ pan", size="sm", elem_id="pan_l")
        ui.zoom_in = gr.Button("zoom in", size="sm", elem_id="zoom_in")
        ui.zoom_out = gr.Button("zoom out", size="sm", elem_id="zoom_out")
        ui.pan_r = gr.Button("pan ▶", size="sm", elem_id="pan_r")
        ui.whole = gr.Button("whole meeting", size="sm", elem_id="whole")
        ui.prev_unsure = gr.Button("◀ unsure", size="sm", elem_id="prev_unsure")
        ui.next_unsure = gr.Button("next unsure ▶", size="sm", elem_id="next_unsure")


def render(S: Session) -> tuple:
    """The timeline figure and the status message."""
    return FigureJSON(timeline.figure(S)), S.message


def navigate(S: Session, action: str):
    """One navigation step by name; returns the player update (a clip of where it went, or skip)."""
    if action in ("next", "prev"):
        timeline.step(S, 1 if action == "next" else -1)
        return solo_clip(S)
    if action in ("unsure", "unsure_prev"):
        timeline.next_unsure(S, 1 if action == "unsure" else -1)
        return solo_clip(S, t0=S.cursor - 1.0, t1=S.cursor + 4.0)
    if action == "zoom_in":
        timeline.zoom(S, 0.5)
    elif action == "zoom_out":
        timeline.zoom(S, 2.0)
    elif action == "pan_l":
        timeline.pan(S, -0.5)
    elif action == "pan_r":
        timeline.pan(S, 0.5)
    elif action == "whole":
        timeline.whole(S)
    return gr.skip()


def nav_handler(ui: UI, fn_name: str, action: str):
    """A button's handler for one navigation action (also used by the Edit panel's ◀ ▶)."""
    @ui.guard
    def handler(S):
        player = navigate(S, action)  # first: the view drawn below is the one it went to
        return ui.view(S) + (player,)

    handler.__name__ = fn_name
    return handler


def wire(ui: UI) -> None:
    VIEW = ui.VIEW

    @ui.guard
    def plot_segment(S, evt: gr.EventData):
        timeline.select(S, int(evt._data["id"]))
        return ui.view(S) + (solo_clip(S, autoplay=False),)

    @ui.guard
    def plot_gesture(S, evt: gr.EventData):
        gestures.apply_gesture(S, evt._data or {})
        return ui.view(S) + (solo_clip(S, autoplay=False),)

    ui.bridge.segdrag(plot_gesture, [], VIEW + [ui.player], api_visibility="private", trigger_mode="multiple",
                      **EDIT_QUEUE)

    ui.bridge.segclick(plot_segment, [], VIEW + [ui.player], api_visibility="private", trigger_mode="multiple",
                       **EDIT_QUEUE)

    @ui.guard
    def plot_cursor(S, evt: gr.EventData):
        try:
            timeline.set_cursor(S, float((evt._data or {}).get("t")))
        except (TypeError, ValueError):
            return tuple(gr.skip() for _ in VIEW)
        S.message = f"Cursor at {S.cursor:.2f} s."
        return ui.view(S)

    ui.bridge.cursorclick(plot_cursor, [], VIEW, api_visibility="private", trigger_mode="always_last",
                          show_progress="hidden")

    @ui.guard
    def plot_zoom(S, evt: gr.EventData):
        data = evt._data or {}
        if data.get("whole"):
            timeline.whole(S)
        else:
            t0, t1 = float(data["t0"]), float(data["t1"])
            span = S.t1 - S.t0
            if abs(t0 - S.t0) < 0.01 * span and abs(t1 - S.t1) < 0.01 * span:
                return tuple(gr.skip() for _ in VIEW)
            timeline.set_view(S, t0, t1)
        return ui.view(S)

    ui.bridge.zoomed(plot_zoom, [], VIEW, api_visibility="private", trigger_mode="always_last",
                     show_progress="hidden")

    transport.wire(ui)
    for btn, name, action in [(ui.next_unsure, "next_unsure", "unsure"), (ui.prev_unsure, "previous_unsure", "unsure_prev"),
                              (ui.zoom_in, "zoom_in", "zoom_in"), (ui.zoom_out, "zoom_out", "zoom_out"),
                              (ui.pan_l, "pan_left", "pan_l"), (ui.pan_r, "pan_right", "pan_r"),
                              (ui.whole, "whole", "whole")]:
        btn.click(nav_handler(ui, name, action), [], VIEW + [ui.player], api_name=name, trigger_mode="multiple",
                  show_progress="hidden")
