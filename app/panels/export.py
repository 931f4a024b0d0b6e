"""Import / Export panel: the corrected RTTM + UEM + CSV, the separated tracks as a zip, the list of
exported files (served to their session only), and importing an RTTM to review. Behaviour:
app/exports.py and app/edits.py (import)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app import edits, exports
from app.panels.ui import UI
from app.timefmt import fmt_time
from app.workspace import file_url

EXPORTS_TMPL = """<div class="pixit-exports"><div class="pp-title">Exported files (click to download)</div>
{{#if value.length}}<ul>{{#each value}}<li><a href="{{this.url}}" download="{{this.name}}">{{this.name}}</a>
<span class="pp-title">{{this.size}}</span></li>{{/each}}</ul>{{else}}<p>Nothing exported yet.</p>{{/if}}</div>"""


def downloads(paths) -> list[dict]:
    """The exports list: name, URL (served to this session only, app/middleware.py) and size."""
    return [{"name": p.name, "url": f"{file_url(p, 'export')}?v={p.stat().st_mtime_ns}",
             "size": f"{p.stat().st_size / 1e3:.1f} kB"} for p in map(Path, paths)]


def layout(ui: UI) -> None:
    gr.Markdown("Exports use your corrected segments. The UEM lists the part you marked as reviewed.")
    with gr.Row():
        ui.export_btn = gr.Button("Export RTTM + UEM + CSV", variant="primary", elem_id="export_btn")
        ui.tracks_btn = gr.Button("Export separated tracks (zip of WAVs)", elem_id="tracks_btn")
    ui.exports = gr.HTML([], html_template=EXPORTS_TMPL, elem_id="exports")
    ui.rttm_in = gr.File(label="Import an RTTM to review it (replaces the segments; undo restores them)",
                         file_types=[".rttm", ".txt"], type="filepath", elem_id="rttm_in")


def wire(ui: UI) -> None:
    @ui.guard
    def export_files(S):
        reviewed = S.history.doc.reviewed_total() if S.history else 0.0
        files = ([exports.export_rttm(S)] + ([exports.export_uem(S)] if reviewed else [])
                 + [exports.export_csv(S)])
        S.message = (f"Exported the corrected RTTM, the UEM of the reviewed part ({fmt_time(reviewed)}) and "
                     "the segments CSV." if reviewed else
                     "Exported the corrected RTTM and the segments CSV (no UEM: nothing is marked as "
                     "reviewed yet).")
        return downloads(files), S.message

    ui.export_btn.click(export_files, [], [ui.exports, ui.status], api_name="export")

    @ui.guard
    def export_tracks(S):
        path = exports.export_tracks(S)
        S.message = "Exported the separated tracks (one WAV per speaker) and the RTTM in a zip."
        return downloads([path]), S.message

    ui.tracks_btn.click(export_tracks, [], [ui.exports, ui.status], api_name="export_tracks",
                        concurrency_id="gpu", concurrency_limit=None, show_progress_on=[ui.exports])

    @ui.guard
    def import_rttm(S, path):
        with ui.access.upload(S.sid, path) as received:  # only this session's own upload
            edits.import_rttm(S, received)
        return ui.view(S) + (None,)

    ui.rttm_in.upload(import_rttm, [ui.rttm_in], ui.VIEW + [ui.rttm_in], api_name="import_rttm")
