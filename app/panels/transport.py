"""Transport bar beside the status line, above the timeline: play / pause, speed 0.5-2x, loop, A/B between the mixture and a
separated track at the same moment, the playhead's time, and "follow" (the view moves on with the
playhead). The controls act on the two players in the browser (transport.js); only the follow asks
the server for the next window."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app import timeline
from app.panels.ui import UI

SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)

TRANSPORT_HTML = (
    '<div class="pixit-transport">'
    '<button id="tp_play" title="play / pause the last player used (Space)">▶ play</button>'
    '<select id="tp_speed" title="playback speed">'
    + "".join(f'<option value="{s}"{" selected" if s == 1.0 else ""}>{s:g}x</option>' for s in SPEEDS)
    + '</select>'
    '<label title="play the clip again and again"><input type="checkbox" id="tp_loop"> loop</label>'
    '<button id="tp_ab" title="switch between the mixture and the separated track at the same moment'
    ' (after Compare with mixture)">A/B</button>'
    '<label title="move the timeline on when the playhead leaves the view">'
    '<input type="checkbox" id="tp_follow" checked> follow</label>'
    '<span id="tp_time"></span>'
    '</div>'
)
TRANSPORT_JS = (Path(__file__).with_name("transport.js")).read_text()


def layout(ui: UI) -> None:
    ui.transport = gr.HTML(TRANSPORT_HTML, js_on_load=TRANSPORT_JS, elem_id="transport", padding=False, scale=0,
                           min_width=500)


def wire(ui: UI) -> None:
    @ui.guard
    def follow(S, evt: gr.EventData):
        """The playhead left the view: show the next window (the same span, the playhead near its start)."""
        try:
            t = float((evt._data or {}).get("t"))
        except (TypeError, ValueError):
            return tuple(gr.skip() for _ in ui.VIEW)
        span = S.t1 - S.t0
        timeline.set_view(S, t - 0.05 * span, t + 0.95 * span)
        return ui.view(S)

    ui.transport.follow(follow, [], ui.VIEW, api_visibility="private", trigger_mode="always_last",
                        show_progress="hidden")
