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

HELP = """**How to use:** ① *Open demo meeting* or upload a recording → ② **Run model** → ③ click a
segment on the timeline (or in the table) to select it, listen, fix it (buttons or keys below) →
④ *Mark view as reviewed* → ⑤ **Export** or **Retrain** on your corrections. Everything is saved as you go."""

CSS = """
.pixit-player { padding: 6px 8px; border: 1px solid var(--border-color-primary); border-radius: 8px; }
.pixit-player audio { width: 100%; }
.pp-title { font-size: 0.85em; margin-bottom: 4px; color: var(--body-text-color-subdued); }
#status { min-height: 2.2em; }
#shortcuts table { font-size: 0.85em; }
.pixit-exports ul { margin: 4px 0 0 1.2em; padding: 0; }
"""


def _layout(ui: UI) -> None:
    """Place the panels: meetings, model and run on the left; timeline, players and the tabs on the right."""
    gr.Markdown("## PixIT Workbench: who spoke when, and what each speaker said on their own track")
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            meetings.layout(ui)
            with gr.Group():
                models.layout_picker(ui)
                run.layout(ui)
            meetings.layout_summary(ui)
            keys.layout(ui)
        with gr.Column(scale=3):
            timeline.layout(ui)
            listen.layout(ui)
            with gr.Tabs():
                with gr.Tab("Edit", id="edit"):
                    edit.layout(ui)
                    speakers.layout(ui)
                    review.layout(ui)
                with gr.Tab("Segments", id="segments"):
                    segments.layout(ui)
                with gr.Tab("Import / Export", id="export"):
                    export.layout(ui)
                with gr.Tab("Retrain", id="retrain"):
                    retrain.layout(ui)
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
    with gr.Blocks(title="PixIT Workbench", delete_cache=(600, 3600)) as demo:
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
