"""Segments panel: the table of the segments in the visible window; clicking a row selects it and
plays it. Also the `/select_segment` API endpoint."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from app import timeline
from app.panels.listen import solo_clip
from app.panels.ui import UI
from app.session import Session

TABLE_HEADERS = ["id", "speaker", "start", "end", "duration"]


def layout(ui: UI) -> None:
    ui.table = gr.Dataframe(headers=TABLE_HEADERS, datatype=["number", "str", "number", "number", "number"],
                            interactive=False, elem_id="table", max_height=360,
                            label="Segments in the visible window (click a row to select it)")


def render(S: Session) -> tuple:
    return (pd.DataFrame(timeline.table_rows(S), columns=TABLE_HEADERS),)


def wire(ui: UI) -> None:
    outputs = ui.VIEW + [ui.player]

    @ui.guard
    def select_segment(S, seg_id):
        """API and table: select a segment by id and load it into the player."""
        timeline.select(S, int(seg_id))
        return ui.view(S) + (solo_clip(S, autoplay=False),)

    select_id = gr.Number(visible=False, precision=0)
    select_go = gr.Button(visible=False)
    select_go.click(select_segment, [select_id], outputs, api_name="select_segment")

    @ui.guard
    def table_select(S, evt: gr.SelectData):
        row = evt.row_value
        if not row:
            return ui.view(S) + (gr.skip(),)
        timeline.select(S, int(float(row[0])))
        return ui.view(S) + (solo_clip(S, autoplay=True),)

    ui.table.select(table_select, [], outputs, api_visibility="private")
