"""Listen panel: the main player (in the inspector) and the compare player (under the timeline), the "Listen to (solo)" choice, Play selection /
visible window, Compare with mixture. Clips are written by app/clips.py."""

from __future__ import annotations

import gradio as gr

from app.clips import clip
from app.panels.ui import UI
from app.session import Session
from core.errors import PixitError

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

EMPTY_PLAYER = {"url": "", "title": "Nothing loaded yet: select a segment and press Play", "start": 0, "source": "",
                "end": 0}


def empty_player(title: str | None = None) -> dict:
    """A player with nothing loaded (shown after the meeting or its run changed)."""
    p = dict(EMPTY_PLAYER)
    if title:
        p["title"] = title
    return p


def player_clip(S: Session, source: str, autoplay: bool = True, t0=None, t1=None) -> dict:
    """A player value: a clip of `source` (the selection's region unless t0/t1 are given)."""
    c = clip(S, source or "mixture", t0, t1)
    c["autoplay"] = autoplay
    return c


def layout_player(ui: UI) -> None:
    """The main player with 'Listen to' and Play selection (in the inspector, beside the selection)."""
    ui.player = gr.HTML(empty_player(), html_template=PLAYER_TMPL, js_on_load=PLAYER_JS, elem_id="player")
    with gr.Row():
        ui.listen = gr.Dropdown(label="Listen to (solo)", choices=["mixture"], value="mixture", elem_id="listen",
                                scale=3, min_width=120)
        ui.play_sel = gr.Button("Play selection", size="sm", elem_id="play_sel", scale=2, min_width=80)


def layout_compare(ui: UI) -> None:
    """The compare player with Play visible window and Compare with mixture (under the timeline)."""
    with gr.Row(equal_height=True):
        ui.compare_player = gr.HTML(empty_player("Compare: press 'Compare with mixture'"),
                                    html_template=PLAYER_TMPL, js_on_load=PLAYER_JS, elem_id="compare_player",
                                    scale=1)
        with gr.Column(scale=0, min_width=190):
            ui.compare_btn = gr.Button("Compare with mixture", size="sm", elem_id="compare_btn")
            ui.play_view = gr.Button("Play visible window", size="sm", elem_id="play_view")


def solo_clip(S: Session, autoplay: bool = True, t0=None, t1=None) -> dict:
    """A clip of what 'Listen to' is set to (the mixture when that speaker has no separated track)."""
    if S.solo != "mixture":
        try:
            return player_clip(S, S.solo, autoplay, t0, t1)
        except PixitError:
            pass
    return player_clip(S, "mixture", autoplay, t0, t1)


def render(S: Session) -> tuple:
    """The solo choices (the mixture and every speaker), the choice following renames and merges."""
    speakers = list(S.history.doc.speakers) if S.history else []
    if S.solo not in speakers:
        S.solo = "mixture"
    return (gr.Dropdown(choices=["mixture"] + speakers, value=S.solo),)


def wire(ui: UI) -> None:
    @ui.guard
    def choose_solo(S, source):
        S.solo = str(source or "mixture")

    ui.listen.change(choose_solo, [ui.listen], [], api_name="choose_solo", show_progress="hidden")

    @ui.guard
    def play_selection(S, source):
        return player_clip(S, source or "mixture")

    ui.play_sel.click(play_selection, [ui.listen], [ui.player], api_name="play")

    @ui.guard
    def play_window(S, source):
        return player_clip(S, source or "mixture", t0=S.t0, t1=S.t1)

    ui.play_view.click(play_window, [ui.listen], [ui.player], api_name="play_view")

    @ui.guard
    def compare(S, source):
        """The mixture and one speaker's separated track on the same region, side by side."""
        spk = source if source and source != "mixture" else None
        if spk is None and S.selected is not None and S.history and S.history.doc.has(S.selected):
            spk = S.history.doc.get(S.selected).speaker
        if spk is None:
            raise PixitError("choose a speaker in 'Listen to' (or select one of their segments) to compare")
        a = player_clip(S, "mixture", autoplay=False)
        b = player_clip(S, spk, autoplay=False, t0=a["start"], t1=a["end"])
        return a, b

    ui.compare_btn.click(compare, [ui.listen], [ui.player, ui.compare_player], api_name="compare")
