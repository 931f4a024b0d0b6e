"""The PixIT Workbench Gradio app: layout and wiring only (behaviour lives in app/session.py).

`build_demo(settings)` returns the Blocks; `launch(...)` serves it on 127.0.0.1 by default with
the upload size limit, optional login, and the session middleware (app/middleware.py). Every
handler finds its Session from the request's session cookie (app/access.py), never from a value
the client sends; the cookie outlives a reload and a server restart, so the work comes back.
"""

import contextlib
import functools
import inspect
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from starlette.middleware import Middleware  # noqa: E402

from app.access import Access, public_message, ticket_of, token_of  # noqa: E402
from app.figures import FigureJSON  # noqa: E402
from app.middleware import Limits, SessionMiddleware  # noqa: E402
from app.registry import Sessions  # noqa: E402
from app.session import Job, Session, Settings, fmt_time  # noqa: E402
from app.workspace import default_root, drop_stale_clips, file_url  # noqa: E402
from core.errors import Cancelled, PixitError  # noqa: E402

log = logging.getLogger("pixit.app")

TABLE_HEADERS = ["id", "speaker", "start", "end", "duration"]
RETRAIN_HEADERS = ["model", "DER %", "false alarm %", "missed %", "confusion %", "scored s"]

SHORTCUTS = [
    ("Space", "play / pause the player"),
    ("N or →", "next segment"), ("P or ←", "previous segment"),
    ("S", "split the selected segment at the playhead (or the cursor)"),
    ("Delete / Backspace", "delete the selected segment"),
    ("1-9", "assign the selected segment to speaker 1-9 (one more than the speakers creates a new one)"),
    ("Ctrl+Z / Ctrl+Shift+Z (Ctrl+Y)", "undo / redo"),
    ("U / Shift+U", "next / previous place where the model is unsure"),
    ("R", "mark the visible window as reviewed"),
    ("+ / -", "zoom in / out"),
]

HELP = """**How to use:** ① *Open demo meeting* or upload a recording → ② **Run model** → ③ click a
segment on the timeline (or in the table) to select it, listen, fix it (buttons or keys below) →
④ *Mark view as reviewed* → ⑤ **Export** or **Retrain** on your corrections. Everything is saved as you go."""

PLAYER_TMPL = """<div class="pixit-player">
<div class="pp-title">${value.title}</div>
<audio controls preload="auto" data-start="${value.start}" data-source="${value.source}" src="${value.url}"></audio>
</div>"""

PLAYER_JS = """
const audio = () => element.querySelector('audio');
const hook = () => {
  const a = audio();
  if (!a || a.__pixit) return;
  a.__pixit = true;
  // move the timeline's cursor line with the playhead (shape 1 is the cursor line)
  a.addEventListener('timeupdate', () => {
    const d = document.querySelector('#timeline .js-plotly-plot');
    if (!d || !window.Plotly || !d.layout || !d.layout.shapes || d.layout.shapes.length < 2) return;
    const t = parseFloat(a.dataset.start || '0') + a.currentTime;
    window.Plotly.relayout(d, {'shapes[1].x0': t, 'shapes[1].x1': t});
  });
};
hook();
watch('value', () => {
  hook();
  const a = audio();
  if (a && props.value && props.value.autoplay && props.value.url) {
    a.currentTime = 0; a.play().catch(() => {});
  }
});
"""

BRIDGE_JS = """
const typing = (el) => el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
const player = () => document.querySelector('#player audio');
window.__pixitPlayhead = () => {
  const a = player();
  if (!a || !a.getAttribute('src') || (a.paused && a.currentTime === 0)) return null;  // never played
  return parseFloat(a.dataset.start || '0') + a.currentTime;
};
if (!window.__pixitKeys) {
  window.__pixitKeys = true;
  document.addEventListener('keydown', (e) => {
    if (typing(e.target)) return;
    const k = e.key, ctrl = e.ctrlKey || e.metaKey;
    if (k === ' ' && !ctrl) {
      const a = player();
      if (a && a.getAttribute('src')) { e.preventDefault(); if (a.paused) a.play(); else a.pause(); }
      return;
    }
    let action = null;
    if (ctrl && (k === 'z' || k === 'Z')) action = e.shiftKey ? 'redo' : 'undo';
    else if (ctrl && (k === 'y' || k === 'Y')) action = 'redo';
    else if (ctrl || e.altKey) return;
    else if (k === 'n' || k === 'N' || k === 'ArrowRight') action = 'next';
    else if (k === 'p' || k === 'P' || k === 'ArrowLeft') action = 'prev';
    else if (k === 's' || k === 'S') action = 'split';
    else if (k === 'Delete' || k === 'Backspace') action = 'delete';
    else if (/^[1-9]$/.test(k)) action = 'speaker' + k;
    else if (k === 'u') action = 'unsure';
    else if (k === 'U') action = 'unsure_prev';
    else if (k === 'r' || k === 'R') action = 'review';
    else if (k === '+' || k === '=') action = 'zoom_in';
    else if (k === '-') action = 'zoom_out';
    if (!action) return;
    e.preventDefault();
    window.__pixitLastKey = action;
    trigger('shortcut', {action: action, t: window.__pixitPlayhead()});
  });
}
setInterval(() => {
  const d = document.querySelector('#timeline .js-plotly-plot');
  if (!d || !d.on || d.__pixit) return;
  d.__pixit = true;
  let clicked = 0;
  d.on('plotly_click', (ev) => {
    const p = ev && ev.points && ev.points[0];
    if (!p) return;
    clicked = Date.now();
    if (p.data && p.data.type === 'bar' && p.customdata !== undefined && p.customdata !== null) {
      trigger('segclick', {id: Number(p.customdata)});
    } else if (typeof p.x === 'number') {
      trigger('cursorclick', {t: p.x});
    }
  });
  d.addEventListener('click', (ev) => {
    const drag = d.querySelector('.nsewdrag');
    const xa = d._fullLayout && d._fullLayout.xaxis;
    if (!drag || !xa) return;
    const bb = drag.getBoundingClientRect();
    if (ev.clientX < bb.left || ev.clientX > bb.right || ev.clientY < bb.top || ev.clientY > bb.bottom) return;
    const t = xa.p2d(ev.clientX - bb.left);
    if (!isFinite(t)) return;
    setTimeout(() => { if (Date.now() - clicked > 150) trigger('cursorclick', {t: t}); }, 120);
  });
  d.on('plotly_relayout', (ev) => {
    if (!ev) return;
    if (ev['xaxis.range[0]'] !== undefined) trigger('zoomed', {t0: ev['xaxis.range[0]'], t1: ev['xaxis.range[1]']});
    else if (ev['xaxis.range'] !== undefined) trigger('zoomed', {t0: ev['xaxis.range'][0], t1: ev['xaxis.range'][1]});
    else if (ev['xaxis.autorange']) trigger('zoomed', {whole: true});
  });
}, 300);
"""

CSS = """
.pixit-player { padding: 6px 8px; border: 1px solid var(--border-color-primary); border-radius: 8px; }
.pixit-player audio { width: 100%; }
.pp-title { font-size: 0.85em; margin-bottom: 4px; color: var(--body-text-color-subdued); }
#status { min-height: 2.2em; }
#shortcuts table { font-size: 0.85em; }
.pixit-exports ul { margin: 4px 0 0 1.2em; padding: 0; }
"""

EXPORTS_TMPL = """<div class="pixit-exports"><div class="pp-title">Exported files (click to download)</div>
{{#if value.length}}<ul>{{#each value}}<li><a href="{{this.url}}" download="{{this.name}}">{{this.name}}</a>
<span class="pp-title">{{this.size}}</span></li>{{/each}}</ul>{{else}}<p>Nothing exported yet.</p>{{/if}}</div>"""

EMPTY_PLAYER = {"url": "", "title": "Nothing loaded yet: select a segment and press Play", "start": 0, "source": "",
                "end": 0}



@contextlib.contextmanager
def _background_job(S: Session, job: Job, what: str):
    """Show a background job's failure as a message (user mistakes as they are, bugs logged) and
    always release the session: a job that is still running when the handler ends is cancelled."""
    try:
        yield
    except PixitError as exc:
        raise gr.Error(public_message(exc), duration=10) from None
    except Exception as exc:
        log.exception("%s failed", what)
        raise gr.Error(public_message(f"{what} failed ({type(exc).__name__}: {exc})")) from None
    finally:
        if not job.done.is_set():
            job.cancel()
        S.busy = None

def downloads(paths) -> list[dict]:
    """The exports list: name, URL (served to this session only, app/middleware.py) and size."""
    return [{"name": p.name, "url": f"{file_url(p, 'export')}?v={p.stat().st_mtime_ns}",
             "size": f"{p.stat().st_size / 1e3:.1f} kB"} for p in map(Path, paths)]


def _empty_player(title: str | None = None) -> dict:
    p = dict(EMPTY_PLAYER)
    if title:
        p["title"] = title
    return p


def render_view(S: Session) -> tuple:
    """Values of the VIEW outputs (timeline, status, summary, selection, speaker lists, table)."""
    speakers = list(S.history.doc.speakers) if S.history else []
    seg = None
    if S.history and S.selected is not None and S.history.doc.has(S.selected):
        seg = S.history.doc.get(S.selected)
    info = (f"Selected segment **#{seg.id}**: speaker **{seg.speaker}** "
            f"({speakers.index(seg.speaker) + 1}), {seg.start:.3f}-{seg.end:.3f} s "
            f"({seg.duration:.2f} s)." if seg else "No segment selected: click one on the timeline.")
    rows = S.table_rows()
    df = pd.DataFrame(rows, columns=TABLE_HEADERS)
    listen_choices = ["mixture"] + speakers
    return (
        FigureJSON(S.figure()), S.message, S.summary(), info,
        seg.start if seg else None, seg.end if seg else None,
        gr.Dropdown(choices=speakers, value=seg.speaker if seg else None),
        round(S.cursor, 3),
        gr.Dropdown(choices=speakers), gr.Dropdown(choices=speakers), gr.Dropdown(choices=speakers),
        gr.Dropdown(choices=listen_choices),
        df,
    )


def build_demo(settings: Settings | None = None) -> gr.Blocks:
    """The whole workbench. `settings` (workspace root, default model, limits) default to the
    environment's (PIXIT_WORKSPACE or ~/.cache/pixit-workbench, model 'default', 200 MB uploads)."""
    settings = settings or Settings(root=default_root())
    settings.root = Path(settings.root)
    settings.root.mkdir(parents=True, exist_ok=True)
    drop_stale_clips(settings.root)
    registry = Sessions(settings)
    access = Access()

    @contextlib.contextmanager
    def session_of(request):
        """The asking session (from its cookie), kept in memory while the request is handled."""
        token = token_of(request)
        try:
            if token is None:  # the middleware refuses such requests; a Blocks mounted without it lands here
                raise PixitError("no session cookie: reload the page")
            S = registry.checkout(token)
        except PixitError as exc:
            raise gr.Error(public_message(exc), duration=10) from None
        try:
            yield S
        finally:
            registry.release(S)

    # Gradio deletes its temporary files (uploads nobody used) older than an hour, every 10 minutes
    with gr.Blocks(title="PixIT Workbench", delete_cache=(600, 3600)) as demo:
        demo.pixit_registry = registry  # for tests and the benchmark
        demo.pixit_access = access

        gr.Markdown("## PixIT Workbench: who spoke when, and what each speaker said on their own track")
        gr.Markdown(HELP)
        with gr.Row():
            # ---------------------------------------------------------------- left: input + model
            with gr.Column(scale=1, min_width=300):
                with gr.Group():
                    demo_btn = gr.Button("Open demo meeting", variant="secondary", elem_id="demo_btn")
                    upload = gr.File(label=f"Upload a meeting (wav, flac, ogg, mp3; max {settings.max_upload_mb:g} MB)",
                                     file_types=[".wav", ".flac", ".ogg", ".oga", ".mp3"], type="filepath",
                                     elem_id="upload")
                    meeting_dd = gr.Dropdown(label="Meetings in this workspace", choices=[], elem_id="meeting_dd",
                                             interactive=True)
                with gr.Group():
                    model_dd = gr.Dropdown(label="Model", choices=Session.startup_choices(settings),
                                           value="startup", elem_id="model_dd", interactive=True)
                    model_path = gr.Textbox(label="...or a Hugging Face Hub id, or a model folder of the server's "
                                                  "--models folders by name", placeholder="org/name[@revision]",
                                            elem_id="model_path")
                    spk_mode = gr.Radio(["auto", "fixed", "bounds"], value="auto", label="Number of speakers",
                                        elem_id="spk_mode")
                    with gr.Row():
                        n_spk = gr.Number(value=2, precision=0, label="fixed", minimum=1, maximum=20, min_width=60)
                        min_spk = gr.Number(value=1, precision=0, label="min", minimum=1, maximum=20, min_width=60)
                        max_spk = gr.Number(value=4, precision=0, label="max", minimum=1, maximum=20, min_width=60)
                    with gr.Row():
                        run_btn = gr.Button("Run model", variant="primary", elem_id="run_btn")
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop_btn")
                summary = gr.Markdown("No meeting open.", elem_id="summary")
                with gr.Accordion("Keyboard shortcuts", open=True, elem_id="shortcuts"):
                    gr.Markdown("| key | action |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in SHORTCUTS)
                                + "\n\nKeys work when the cursor is not in a text field. Click on the timeline to set"
                                  " the cursor; drag to zoom; double-click to see the whole meeting.")
            # ---------------------------------------------------------------- right: timeline + player + tabs
            with gr.Column(scale=3):
                status = gr.Markdown("", elem_id="status")
                timeline = gr.Plot(label="Timeline", show_label=False, elem_id="timeline")
                with gr.Row():
                    pan_l = gr.Button("◀ pan", size="sm", elem_id="pan_l")
                    zoom_in = gr.Button("zoom in", size="sm", elem_id="zoom_in")
                    zoom_out = gr.Button("zoom out", size="sm", elem_id="zoom_out")
                    pan_r = gr.Button("pan ▶", size="sm", elem_id="pan_r")
                    whole = gr.Button("whole meeting", size="sm", elem_id="whole")
                    prev_unsure = gr.Button("◀ unsure", size="sm", elem_id="prev_unsure")
                    next_unsure = gr.Button("next unsure ▶", size="sm", elem_id="next_unsure")
                with gr.Row():
                    with gr.Column(scale=1):
                        player = gr.HTML(_empty_player(), html_template=PLAYER_TMPL, js_on_load=PLAYER_JS,
                                         elem_id="player")
                    with gr.Column(scale=1):
                        compare_player = gr.HTML(_empty_player("Compare: press 'Compare with mixture'"),
                                                 html_template=PLAYER_TMPL, js_on_load=PLAYER_JS,
                                                 elem_id="compare_player")
                with gr.Row():
                    listen = gr.Dropdown(label="Listen to (solo)", choices=["mixture"], value="mixture",
                                         elem_id="listen", scale=2)
                    play_sel = gr.Button("Play selection", elem_id="play_sel", scale=1)
                    play_view = gr.Button("Play visible window", elem_id="play_view", scale=1)
                    compare_btn = gr.Button("Compare with mixture", elem_id="compare_btn", scale=1)
                with gr.Tabs():
                    with gr.Tab("Edit", id="edit"):
                        sel_info = gr.Markdown("No segment selected.", elem_id="sel_info")
                        with gr.Row():
                            sel_start = gr.Number(label="start (s)", precision=3, elem_id="sel_start")
                            sel_end = gr.Number(label="end (s)", precision=3, elem_id="sel_end")
                            sel_speaker = gr.Dropdown(label="speaker", choices=[], allow_custom_value=True,
                                                      elem_id="sel_speaker")
                            cursor = gr.Number(label="cursor (s)", precision=3, elem_id="cursor")
                        with gr.Row():
                            apply_btn = gr.Button("Apply start/end", elem_id="apply_btn")
                            speaker_btn = gr.Button("Set speaker", elem_id="speaker_btn")
                            split_btn = gr.Button("Split at cursor", elem_id="split_btn")
                            delete_btn = gr.Button("Delete", variant="stop", elem_id="delete_btn")
                            add_btn = gr.Button("Add as new segment", elem_id="add_btn")
                        with gr.Row():
                            prev_btn = gr.Button("◀ previous segment", size="sm", elem_id="prev_btn")
                            next_btn = gr.Button("next segment ▶", size="sm", elem_id="next_btn")
                            undo_btn = gr.Button("Undo", size="sm", elem_id="undo_btn")
                            redo_btn = gr.Button("Redo", size="sm", elem_id="redo_btn")
                            reset_btn = gr.Button("Reset to model output", size="sm", elem_id="reset_btn")
                        with gr.Accordion("Speakers: rename everywhere, merge two", open=True):
                            with gr.Row():
                                spk_a = gr.Dropdown(label="speaker", choices=[], elem_id="spk_a")
                                new_name = gr.Textbox(label="new name", elem_id="new_name")
                                rename_btn = gr.Button("Rename everywhere", elem_id="rename_btn")
                            with gr.Row():
                                spk_b = gr.Dropdown(label="merge this speaker...", choices=[], elem_id="spk_b")
                                spk_c = gr.Dropdown(label="...into this one", choices=[], elem_id="spk_c")
                                merge_btn = gr.Button("Merge speakers", elem_id="merge_btn")
                        with gr.Accordion("Reviewed part (exported as UEM, used for retraining)", open=True):
                            gr.Markdown("When you have checked a stretch of the meeting, mark it: *view* = the "
                                        "visible window (key R), *start-end* = the two fields above. Only "
                                        "reviewed parts are exported as UEM and used for retraining.")
                            with gr.Row():
                                review_view_btn = gr.Button("Mark view as reviewed", elem_id="review_view_btn")
                                review_btn = gr.Button("Mark start-end as reviewed", elem_id="review_btn")
                                unreview_btn = gr.Button("Unmark start-end", elem_id="unreview_btn")
                    with gr.Tab("Segments", id="segments"):
                        table = gr.Dataframe(headers=TABLE_HEADERS, datatype=["number", "str", "number", "number", "number"],
                                             interactive=False, elem_id="table", max_height=360,
                                             label="Segments in the visible window (click a row to select it)")
                    with gr.Tab("Import / Export", id="export"):
                        gr.Markdown("Exports use your corrected segments. The UEM lists the part you marked as reviewed.")
                        with gr.Row():
                            export_btn = gr.Button("Export RTTM + UEM + CSV", variant="primary", elem_id="export_btn")
                            tracks_btn = gr.Button("Export separated tracks (zip of WAVs)", elem_id="tracks_btn")
                        exports = gr.HTML([], html_template=EXPORTS_TMPL, elem_id="exports")
                        rttm_in = gr.File(label="Import an RTTM to review it (replaces the segments; undo restores them)",
                                          file_types=[".rttm", ".txt"], type="filepath", elem_id="rttm_in")
                    with gr.Tab("Retrain", id="retrain"):
                        gr.Markdown(
                            "Fine-tune the current model on your corrections (the reviewed parts of every meeting in "
                            "this workspace). The **last part of each reviewed region is held out** (not trained on) "
                            "and used to compare the model before and after. The new model becomes a version you can "
                            "pick in the Model list; the previous one stays available.")
                        with gr.Row():
                            lr = gr.Number(value=1e-4, label="learning rate", elem_id="lr")
                            steps = gr.Number(value=min(200, settings.max_retrain_steps), precision=0,
                                              label=f"steps (at most {settings.max_retrain_steps})", minimum=1,
                                              maximum=settings.max_retrain_steps, elem_id="steps")
                            heldout = gr.Slider(5, 50, value=20, step=5, label="held-out part of the reviewed region (%)",
                                                elem_id="heldout")
                        with gr.Row():
                            retrain_btn = gr.Button("Retrain on my corrections", variant="primary", elem_id="retrain_btn")
                            retrain_stop = gr.Button("Stop retraining", variant="stop", elem_id="retrain_stop")
                        retrain_note = gr.Markdown("", elem_id="retrain_note")
                        retrain_table = gr.Dataframe(headers=RETRAIN_HEADERS, interactive=False, elem_id="retrain_table",
                                                     label="Before / after on the held-out part")
                        with gr.Accordion("Share the selected model on the Hugging Face Hub", open=False):
                            with gr.Row():
                                share_repo = gr.Textbox(label="repo (org/name)", elem_id="share_repo")
                                share_private = gr.Checkbox(value=True, label="private", elem_id="share_private")
                            share_btn = gr.Button("Share with a model card (uses the server's Hugging Face login)",
                                                  elem_id="share_btn")
        bridge = gr.HTML("", visible="hidden", js_on_load=BRIDGE_JS, elem_id="bridge")

        # a session's edits and shortcuts run one at a time in arrival order (its Lane, entered by
        # `guard`); sessions do not wait for each other (up to 16 edits of different sessions at once)
        EDIT_QUEUE = {"concurrency_id": "edit", "concurrency_limit": 16, "show_progress": "hidden"}

        # ------------------------------------------------------------------ outputs
        VIEW = [timeline, status, summary, sel_info, sel_start, sel_end, sel_speaker, cursor,
                spk_a, spk_b, spk_c, listen, table]
        PLAYERS = [player, compare_player]
        LISTS = [meeting_dd, model_dd]

        view = render_view

        def lists(S: Session) -> tuple:
            meetings = [(f"{m.name} ({fmt_time(m.duration)})", m.id) for m in S.ws.meetings()]
            current = S.meeting.id if S.meeting else None
            return (gr.Dropdown(choices=meetings, value=current), gr.Dropdown(choices=S.model_choices()))

        def guard(fn):
            """Wire `fn(S, *inputs)` as a handler: S is the asking session (from its cookie), held
            while fn runs so that one session's requests apply in arrival order. PixitError -> a
            clear message (gr.Error, no server path in it); anything unexpected is logged, and the
            session's state is left as it was (edits are only applied when they succeed)."""
            params = list(inspect.signature(fn).parameters.values())[1:]
            params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request))

            @functools.wraps(fn)
            def wrapped(*args):
                *values, request = args
                try:
                    with session_of(request) as S, S.lock.turn(ticket_of(request)):
                        return fn(S, *values)
                except gr.Error:
                    raise
                except PixitError as exc:
                    raise gr.Error(public_message(exc), duration=8) from None
                except Exception as exc:
                    log.exception("handler %s failed", fn.__name__)
                    raise gr.Error(public_message(f"unexpected error ({type(exc).__name__}: {exc}); "
                                                  "your edits are saved")) from None

            wrapped.__signature__ = inspect.Signature(params)
            wrapped.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty}
            del wrapped.__wrapped__
            return wrapped

        # ------------------------------------------------------------------ session start / restore
        @guard
        def open_session(S):
            if S.meeting is not None:
                S.message = f"Welcome back: restored **{S.meeting.name}** with your edits."
            return view(S) + lists(S)

        demo.load(open_session, [], VIEW + LISTS, api_visibility="private")

        # ------------------------------------------------------------------ meetings
        @guard
        def upload_meeting(S, path):
            with access.upload(S.sid, path) as received:  # only this session's own upload
                S.add_audio(received, received.name)
            return view(S) + lists(S) + (_empty_player(), _empty_player(), None)

        upload.upload(upload_meeting, [upload], VIEW + LISTS + PLAYERS + [upload], api_name="upload_meeting")

        @guard
        def open_demo(S):
            S.open_demo()
            return view(S) + lists(S) + (_empty_player(), _empty_player())

        demo_btn.click(open_demo, [], VIEW + LISTS + PLAYERS, api_name="open_demo")

        @guard
        def switch_meeting(S, mid):
            if not mid or (S.meeting and S.meeting.id == mid):
                return view(S) + (_empty_player(), _empty_player())
            S.open_meeting(mid)
            return view(S) + (_empty_player(), _empty_player())

        meeting_dd.input(switch_meeting, [meeting_dd], VIEW + PLAYERS, api_name="switch_meeting")

        # ------------------------------------------------------------------ run the model
        def speaker_kwargs(mode, n, lo, hi):
            def num(x, what):
                try:
                    v = int(x)
                except (TypeError, ValueError):
                    raise PixitError(f"{what} must be a whole number") from None
                if not 1 <= v <= 20:
                    raise PixitError(f"{what} must be between 1 and 20")
                return v

            if mode == "fixed":
                return {"num_speakers": num(n, "number of speakers")}
            if mode == "bounds":
                a, b = num(lo, "min speakers"), num(hi, "max speakers")
                if a > b:
                    raise PixitError(f"min speakers ({a}) is larger than max speakers ({b})")
                return {"min_speakers": a, "max_speakers": b}
            return {}

        def run_model(model_choice, model_folder, mode, n, lo, hi, request: gr.Request, progress=gr.Progress()):
            with session_of(request) as S:
                S.lock.skip(ticket_of(request))  # a job takes no turn: the session's edits go on meanwhile
                try:
                    model, label = S.resolve_model(model_choice, model_folder)
                    kw = speaker_kwargs(mode, n, lo, hi)
                    if S.meeting is None:
                        raise PixitError("open a meeting first (upload one or click 'Open demo meeting')")
                except PixitError as exc:
                    raise gr.Error(public_message(exc), duration=8) from None
                S.stop.clear()
                S.busy = "run"  # keeps the session in memory until the job has ended (app/registry.py)
            skip = tuple(gr.skip() for _ in VIEW + LISTS + PLAYERS)
            job = Job(lambda p, st: S.run_model(model, label, progress=p, should_stop=st, **kw), S.stop)
            with _background_job(S, job, "the model run"):
                try:
                    for frac, msg in job.updates():
                        progress(frac, desc=msg)
                        yield (gr.skip(), f"Running **{label}** on {S.meeting.name}: {msg} ({frac:.0%}). "
                                          f"Press Stop to cancel.") + skip[2:]
                    job.outcome()
                except Cancelled:
                    S.message = "Stopped: the model run was cancelled; nothing changed."
            yield view(S) + lists(S) + (_empty_player(), _empty_player())

        run_ev = run_btn.click(run_model, [model_dd, model_path, spk_mode, n_spk, min_spk, max_spk],
                               VIEW + LISTS + PLAYERS, api_name="run_model", concurrency_id="gpu",
                               concurrency_limit=1, show_progress_on=[timeline])

        @guard
        def stop_work(S):
            S.stop.set()
            return "Stopping... (the current step finishes first)" if S.busy else "Nothing is running."

        stop_btn.click(stop_work, [], [status], api_name="stop", concurrency_limit=None)
        retrain_stop.click(stop_work, [], [status], api_name="stop_retrain", concurrency_limit=None)

        # ------------------------------------------------------------------ edits (one endpoint each)
        def _edit(fn_name, name, build_args, inputs, trigger):
            def handler(S, *values):
                S.edit(name, *build_args(*values))
                return view(S)

            handler.__signature__ = inspect.Signature(
                [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                 for p in ["S"] + [f"v{i}" for i in range(len(inputs))]])
            handler.__name__ = fn_name
            trigger(guard(handler), inputs, VIEW, api_name=fn_name, trigger_mode="multiple", **EDIT_QUEUE)

        _edit("add_segment", "add", lambda a, b, spk: (a, b, spk), [sel_start, sel_end, sel_speaker], add_btn.click)
        _edit("move_segment", "move", lambda a, b: (a, b), [sel_start, sel_end], apply_btn.click)
        _edit("set_speaker", "set_speaker", lambda spk: (spk,), [sel_speaker], speaker_btn.click)
        _edit("split_segment", "split", lambda t: (t,), [cursor], split_btn.click)
        _edit("delete_segment", "delete", lambda: (), [], delete_btn.click)
        _edit("rename_speaker", "rename", lambda a, b: (a, b), [spk_a, new_name], rename_btn.click)
        _edit("merge_speakers", "merge", lambda absorb, keep: (keep, absorb), [spk_b, spk_c], merge_btn.click)
        _edit("mark_reviewed", "review", lambda a, b: (a, b), [sel_start, sel_end], review_btn.click)
        _edit("unmark_reviewed", "unreview", lambda a, b: (a, b), [sel_start, sel_end], unreview_btn.click)

        @guard
        def review_view(S):
            S.edit("review", S.t0, S.t1)
            return view(S)

        review_view_btn.click(review_view, [], VIEW, api_name="review_view", trigger_mode="multiple", **EDIT_QUEUE)

        def simple(fn_name, method):
            @guard
            def handler(S):
                getattr(S, method)()
                return view(S)

            handler.__name__ = fn_name
            return handler

        undo_btn.click(simple("undo", "undo"), [], VIEW, api_name="undo", trigger_mode="multiple", **EDIT_QUEUE)
        redo_btn.click(simple("redo", "redo"), [], VIEW, api_name="redo", trigger_mode="multiple", **EDIT_QUEUE)
        reset_btn.click(simple("reset", "reset"), [], VIEW, api_name="reset", **EDIT_QUEUE)

        @guard
        def import_rttm(S, path):
            with access.upload(S.sid, path) as received:  # only this session's own upload
                S.import_rttm(received)
            return view(S) + (None,)

        rttm_in.upload(import_rttm, [rttm_in], VIEW + [rttm_in], api_name="import_rttm")

        # ------------------------------------------------------------------ selection, navigation, view
        @guard
        def select_segment(S, seg_id):
            """API and table: select a segment by id and load it into the player."""
            S.select(int(seg_id))
            return view(S) + (_clip(S, "mixture", autoplay=False),)

        def _clip(S: Session, source: str, autoplay: bool = True, t0=None, t1=None) -> dict:
            c = S.clip(source or "mixture", t0, t1)
            c["autoplay"] = autoplay
            return c

        select_id = gr.Number(visible=False, precision=0)
        select_go = gr.Button(visible=False)
        select_go.click(select_segment, [select_id], VIEW + [player], api_name="select_segment")

        @guard
        def table_select(S, evt: gr.SelectData):
            row = evt.row_value
            if not row:
                return view(S) + (gr.skip(),)
            S.select(int(float(row[0])))
            return view(S) + (_clip(S, "mixture", autoplay=True),)

        table.select(table_select, [], VIEW + [player], api_visibility="private")

        @guard
        def plot_segment(S, evt: gr.EventData):
            S.select(int(evt._data["id"]))
            return view(S) + (_clip(S, "mixture", autoplay=False),)

        bridge.segclick(plot_segment, [], VIEW + [player], api_visibility="private", trigger_mode="multiple",
                        **EDIT_QUEUE)

        @guard
        def plot_cursor(S, evt: gr.EventData):
            try:
                S.set_cursor(float((evt._data or {}).get("t")))
            except (TypeError, ValueError):
                return tuple(gr.skip() for _ in VIEW)
            S.message = f"Cursor at {S.cursor:.2f} s."
            return view(S)

        bridge.cursorclick(plot_cursor, [], VIEW, api_visibility="private", trigger_mode="always_last",
                           show_progress="hidden")

        @guard
        def plot_zoom(S, evt: gr.EventData):
            data = evt._data or {}
            if data.get("whole"):
                S.whole()
            else:
                t0, t1 = float(data["t0"]), float(data["t1"])
                span = S.t1 - S.t0
                if abs(t0 - S.t0) < 0.01 * span and abs(t1 - S.t1) < 0.01 * span:
                    return tuple(gr.skip() for _ in VIEW)
                S.set_view(t0, t1)
            return view(S)

        bridge.zoomed(plot_zoom, [], VIEW, api_visibility="private", trigger_mode="always_last",
                      show_progress="hidden")

        def nav(fn_name, action):
            @guard
            def handler(S):
                out_player = gr.skip()
                if action == "next":
                    S.step(1)
                    out_player = _clip(S, "mixture")
                elif action == "prev":
                    S.step(-1)
                    out_player = _clip(S, "mixture")
                elif action == "unsure":
                    S.next_unsure(1)
                    a = S.cursor
                    out_player = _clip(S, "mixture", t0=a - 1.0, t1=a + 4.0)
                elif action == "unsure_prev":
                    S.next_unsure(-1)
                    a = S.cursor
                    out_player = _clip(S, "mixture", t0=a - 1.0, t1=a + 4.0)
                elif action == "zoom_in":
                    S.zoom(0.5)
                elif action == "zoom_out":
                    S.zoom(2.0)
                elif action == "pan_l":
                    S.pan(-0.5)
                elif action == "pan_r":
                    S.pan(0.5)
                elif action == "whole":
                    S.whole()
                return view(S) + (out_player,)

            handler.__name__ = fn_name
            return handler

        for btn, name, action in [(next_btn, "next_segment", "next"), (prev_btn, "previous_segment", "prev"),
                                  (next_unsure, "next_unsure", "unsure"), (prev_unsure, "previous_unsure", "unsure_prev"),
                                  (zoom_in, "zoom_in", "zoom_in"), (zoom_out, "zoom_out", "zoom_out"),
                                  (pan_l, "pan_left", "pan_l"), (pan_r, "pan_right", "pan_r"), (whole, "whole", "whole")]:
            btn.click(nav(name, action), [], VIEW + [player], api_name=name, trigger_mode="multiple",
                      show_progress="hidden")

        # ------------------------------------------------------------------ keyboard shortcuts
        def apply_key(S: Session, action: str, t):
            """One shortcut; returns the player update. `t` is the player's playhead (meeting time)
            when something was played: splitting happens there, else at the cursor."""
            if t is not None and action == "split":
                try:
                    S.set_cursor(float(t))
                except (TypeError, ValueError):
                    pass
            if action in ("next", "prev"):
                S.step(1 if action == "next" else -1)
                return _clip(S, "mixture")
            if action in ("unsure", "unsure_prev"):
                S.next_unsure(1 if action == "unsure" else -1)
                return _clip(S, "mixture", t0=S.cursor - 1.0, t1=S.cursor + 4.0)
            if action == "undo":
                S.undo()
            elif action == "redo":
                S.redo()
            elif action == "delete":
                S.edit("delete")
            elif action == "split":
                S.edit("split", S.cursor)
            elif action.startswith("speaker") and action[7:].isdigit():
                S.edit("set_speaker", int(action[7:]))
            elif action == "review":
                S.edit("review", S.t0, S.t1)
            elif action == "zoom_in":
                S.zoom(0.5)
            elif action == "zoom_out":
                S.zoom(2.0)
            else:
                raise PixitError(f"unknown shortcut {action!r}")
            return gr.skip()

        @guard
        def on_key(S, evt: gr.EventData):
            data = evt._data or {}
            out = apply_key(S, str(data.get("action", "")), data.get("t"))
            return view(S) + (out,)

        bridge.shortcut(on_key, [], VIEW + [player], api_visibility="private", trigger_mode="multiple",
                        **EDIT_QUEUE)

        @guard
        def press_key(S, action, playhead):
            """API twin of the keyboard bridge (same code path), for scripted clients and tests."""
            out = apply_key(S, str(action), playhead)
            return view(S) + (out,)

        key_action = gr.Textbox(visible=False)
        key_time = gr.Number(visible=False)
        key_go = gr.Button(visible=False)
        key_go.click(press_key, [key_action, key_time], VIEW + [player], api_name="press_key",
                     trigger_mode="multiple", **EDIT_QUEUE)

        # ------------------------------------------------------------------ listening
        @guard
        def play_selection(S, source):
            return _clip(S, source or "mixture")

        play_sel.click(play_selection, [listen], [player], api_name="play")

        @guard
        def play_window(S, source):
            return _clip(S, source or "mixture", t0=S.t0, t1=S.t1)

        play_view.click(play_window, [listen], [player], api_name="play_view")

        @guard
        def compare(S, source):
            """The mixture and one speaker's separated track on the same region, side by side."""
            spk = source if source and source != "mixture" else None
            if spk is None and S.selected is not None and S.history and S.history.doc.has(S.selected):
                spk = S.history.doc.get(S.selected).speaker
            if spk is None:
                raise PixitError("choose a speaker in 'Listen to' (or select one of their segments) to compare")
            a = _clip(S, "mixture", autoplay=False)
            b = _clip(S, spk, autoplay=False, t0=a["start"], t1=a["end"])
            return a, b

        compare_btn.click(compare, [listen], [player, compare_player], api_name="compare")

        # ------------------------------------------------------------------ export
        @guard
        def export_files(S):
            reviewed = S.history.doc.reviewed_total() if S.history else 0.0
            files = [S.export_rttm()] + ([S.export_uem()] if reviewed else []) + [S.export_csv()]
            S.message = (f"Exported the corrected RTTM, the UEM of the reviewed part ({fmt_time(reviewed)}) and "
                         "the segments CSV." if reviewed else
                         "Exported the corrected RTTM and the segments CSV (no UEM: nothing is marked as "
                         "reviewed yet).")
            return downloads(files), S.message

        export_btn.click(export_files, [], [exports, status], api_name="export")

        @guard
        def export_tracks(S):
            path = S.export_tracks()
            S.message = "Exported the separated tracks (one WAV per speaker) and the RTTM in a zip."
            return downloads([path]), S.message

        tracks_btn.click(export_tracks, [], [exports, status], api_name="export_tracks",
                         concurrency_id="gpu", concurrency_limit=1, show_progress_on=[exports])

        # ------------------------------------------------------------------ retrain
        def retrain(model_choice, model_folder, lr_, steps_, heldout_, request: gr.Request, progress=gr.Progress()):
            with session_of(request) as S:
                S.lock.skip(ticket_of(request))
                try:
                    if S.meeting is None:
                        raise PixitError("open a meeting first")
                    if not S.corrected_meetings():
                        raise PixitError("no corrected meeting yet: review part of a meeting, mark it as reviewed "
                                         "(Edit tab > 'Mark view as reviewed' or key R), then retrain")
                    model, label = S.resolve_model(model_choice, model_folder)
                    lr_v, steps_v, held = float(lr_), int(steps_), float(heldout_) / 100.0
                except (TypeError, ValueError):
                    raise gr.Error("learning rate and steps must be numbers") from None
                except PixitError as exc:
                    raise gr.Error(public_message(exc), duration=10) from None
                S.stop.clear()
                S.busy = "retrain"  # keeps the session in memory until the job has ended
            outs = VIEW + LISTS + PLAYERS + [retrain_note, retrain_table]
            skip = [gr.skip() for _ in outs]
            job = Job(lambda p, st: S.retrain(model, label, lr_v, steps_v, held, progress=p, should_stop=st), S.stop)
            with _background_job(S, job, "retraining"):
                try:
                    for frac, msg in job.updates():
                        progress(frac, desc=msg)
                        upd = list(skip)
                        upd[outs.index(retrain_note)] = f"Retraining from **{label}**: {msg} ({frac:.0%}). Stop cancels it."
                        yield tuple(upd)
                    job.outcome()
                    note = S.retrain_note
                except Cancelled:
                    note = S.message = "Retraining stopped; no new model version was made."
            df = pd.DataFrame(S.retrain_table, columns=RETRAIN_HEADERS)
            newest = S.ws.versions()[-1]["id"] if S.ws.versions() else None
            lst = lists(S)
            model_update = gr.Dropdown(choices=S.model_choices(), value=f"version:{newest}") if newest and note == S.retrain_note else lst[1]
            yield view(S) + (lst[0], model_update) + (_empty_player(), _empty_player()) + (note, df)

        retrain_btn.click(retrain, [model_dd, model_path, lr, steps, heldout],
                          VIEW + LISTS + PLAYERS + [retrain_note, retrain_table], api_name="retrain",
                          concurrency_id="gpu", concurrency_limit=1, show_progress_on=[retrain_table])

        @guard
        def share(S, model_choice, model_folder, repo, private):
            return S.share(*S.resolve_model(model_choice, model_folder), repo, private)

        share_btn.click(share, [model_dd, model_path, share_repo, share_private], [status], api_name="share")

        @guard
        def refresh(S):
            return view(S) + lists(S)

        refresh_btn = gr.Button(visible=False)
        refresh_btn.click(refresh, [], VIEW + LISTS, api_name="refresh")

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
