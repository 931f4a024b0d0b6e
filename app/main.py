"""The PixIT Workbench Gradio app: the page layout, panel by panel (app/panels/), and `launch`.

`build_demo(settings)` returns the Blocks; `launch(...)` serves it on 127.0.0.1 by default with
the upload size limit, optional login, and the session middleware (app/middleware.py). Every
handler finds its Session from the request's session cookie (app/access.py), never from a value
the client sends; the cookie outlives a reload and a server restart, so the work comes back.
"""

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from starlette.middleware import Middleware  # noqa: E402

from app.access import Access  # noqa: E402
from app.middleware import Limits, SessionMiddleware  # noqa: E402
from app.panels import (edit, export, keys, listen, meetings, models, retrain, review, run, segments,  # noqa: E402
                        speakers, timeline)
from app.panels.ui import UI  # noqa: E402
from app.panels.view import render_lists, render_view  # noqa: E402
from app.registry import Sessions  # noqa: E402
from app.session import Settings  # noqa: E402
from app.workspace import default_root, drop_stale_clips  # noqa: E402

HELP = """**PixIT Workbench** · ① *Open demo meeting* or upload → ② **Run model** → ③ click a segment, listen,
fix it on the right → ④ *Mark view as reviewed* → ⑤ **Export** or **Retrain**. Saved as you go."""

CSS = """
#header { font-size: 0.85em; line-height: 1.35; }
#header p { margin: 0; }
#toolbar { align-items: stretch; }
#upload [data-testid="upload-icon"] { display: none; }
#upload [data-testid="upload-text"] { padding-top: 1.2em; font-size: 0.9em; }
#upload .or { display: inline; margin: 0 0.3em; }
#demo_btn { min-height: 100%; border: 2px solid var(--button-primary-border-color); }
#run_col { gap: 4px; }
#spk_mode { min-width: 270px !important; }
#spk_mode .wrap { flex-wrap: nowrap; gap: 4px; }
#spk_mode label { padding: 4px 8px; }
#run_btn { flex-grow: 1; }
#inspector { gap: 6px; }
#inspector button { padding-left: 4px; padding-right: 4px; white-space: nowrap; }
#sel_info { min-height: 3.6em; font-size: 0.9em; }
.pixit-player { padding: 6px 8px; border: 1px solid var(--border-color-primary); border-radius: 8px; }
.pixit-player audio { width: 100%; height: 36px; }
.pp-title { font-size: 0.85em; margin-bottom: 4px; color: var(--body-text-color-subdued); }
#status { min-height: 1.6em; }
#pan_l, #zoom_in, #zoom_out, #pan_r, #whole, #prev_unsure, #next_unsure { min-width: 0 !important; }
#shortcuts table { font-size: 0.85em; }
.pixit-transport { display: flex; align-items: center; gap: 8px; font-size: 0.85em; padding: 2px 4px; white-space: nowrap; }
.pixit-transport button, .pixit-transport select { border: 1px solid var(--border-color-primary);
  border-radius: 6px; padding: 1px 10px; background: var(--button-secondary-background-fill); }
.pixit-transport button:disabled { opacity: 0.4; }
#tp_time { color: var(--body-text-color-subdued); font-variant-numeric: tabular-nums; overflow: hidden; text-overflow: ellipsis; }
.pixit-exports ul { margin: 4px 0 0 1.2em; padding: 0; }
"""


def _layout(ui: UI) -> None:
    """Place the panels for a laptop screen (1366x768) and up: one toolbar (meetings, model,
    speakers, Run) at the top; below it the timeline with the compare player, and beside it the
    selected segment's inspector with the main player, all visible without scrolling; the less
    frequent panels in tabs underneath."""
    gr.Markdown(HELP, elem_id="header")
    with gr.Row(elem_id="toolbar", equal_height=True):
        meetings.layout(ui)
        models.layout_picker(ui)
        run.layout(ui)
    with gr.Row(elem_id="workbench"):
        with gr.Column(scale=4, min_width=640):
            timeline.layout(ui)
            listen.layout_compare(ui)
            meetings.layout_summary(ui)
        with gr.Column(scale=1, min_width=340, elem_id="inspector"):
            edit.layout(ui)
            listen.layout_player(ui)
    with gr.Tabs():
        with gr.Tab("Edit speakers, reviewed part", id="edit"):
            speakers.layout(ui)
            review.layout(ui)
        with gr.Tab("Segments", id="segments"):
            segments.layout(ui)
        with gr.Tab("Import / Export", id="export"):
            export.layout(ui)
        with gr.Tab("Retrain", id="retrain"):
            retrain.layout(ui)
        with gr.Tab("Model by name", id="model"):
            models.layout_by_name(ui)
        with gr.Tab("Keyboard shortcuts", id="keys"):
            keys.layout(ui)
    # the keyboard and the timeline's clicks and zooms reach Python through this hidden element
    ui.bridge = gr.HTML("", visible="hidden", js_on_load=keys.KEYS_JS + timeline.PLOT_JS, elem_id="bridge")


def build_demo(settings: Settings | None = None) -> gr.Blocks:
    """The whole workbench. `settings` (workspace root, default model, limits) default to the
    environment's (PIXIT_WORKSPACE or ~/.cache/pixit-workbench, model 'default', 200 MB uploads)."""
    settings = settings or Settings(root=default_root())
    settings.root = Path(settings.root)
    settings.root.mkdir(parents=True, exist_ok=True)
    drop_stale_clips(settings.root)
    registry = Sessions(settings)
    access = Access()
    ui = UI(settings, registry, access, render=render_view, render_lists=render_lists)

    # Gradio deletes its temporary files (uploads nobody used) older than an hour, every 10 minutes
    with gr.Blocks(title="PixIT Workbench", delete_cache=(600, 3600), fill_width=True) as demo:
        demo.pixit_registry = registry  # for tests and the benchmark
        demo.pixit_access = access
        _layout(ui)
        meetings.wire(ui, demo)
        run.wire(ui)
        edit.wire(ui)
        speakers.wire(ui)
        review.wire(ui)
        export.wire(ui)
        segments.wire(ui)
        timeline.wire(ui)
        keys.wire(ui)
        listen.wire(ui)
        retrain.wire(ui)
        models.wire(ui)
        ui.know_outputs(demo)

    demo.queue(default_concurrency_limit=4)
    demo.pixit_settings = settings
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, prevent_thread_lock: bool = False,
           quiet: bool = False, auth: list[tuple[str, str]] | None = None):
    """Serve the workbench: on 127.0.0.1 unless told otherwise, with the upload limit, the session
    middleware in front of every route (app/middleware.py), and optionally Gradio's own login
    (`auth`: [(user, password), ...]). Gradio serves no folder of ours (no allowed or static
    paths), keeps no run history, and renders in the browser (no SSR server)."""
    settings: Settings = demo.pixit_settings
    limits = Limits(events=settings.max_events_per_session, jobs=settings.max_jobs_per_session)
    guard = Middleware(SessionMiddleware, access=demo.pixit_access, root=settings.root, limits=limits)
    return demo.launch(
        server_name=host, server_port=port, prevent_thread_lock=prevent_thread_lock, quiet=quiet,
        max_file_size=f"{int(settings.max_upload_mb)}mb", auth=auth or None,
        auth_message="PixIT Workbench: log in with the account the server was started with." if auth else None,
        app_kwargs={"middleware": [guard]}, ssr_mode=False, run_history=False,
        state_session_capacity=4 * settings.max_sessions,  # Gradio's per-tab state, bounded like the sessions
        css=CSS, theme=gr.themes.Soft(), footer_links=["api", "settings"], show_error=True,
    )


if __name__ == "__main__":
    launch(build_demo())
