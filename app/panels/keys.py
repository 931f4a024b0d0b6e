"""Keyboard shortcuts: the table of keys (a tab), the key listener (JS, on the bridge element)
and the one handler every key goes through, with an API twin (`/press_key`) for scripted clients."""

from __future__ import annotations

import gradio as gr

from app import edits, timeline
from app.panels.timeline import navigate
from app.panels.ui import EDIT_QUEUE, UI
from app.session import Session
from core.errors import PixitError

SHORTCUTS = [
    ("Space", "play / pause (the player last used)"),
    ("N or →", "next segment"), ("P or ←", "previous segment"),
    ("S", "split the selected segment at the playhead (or the cursor, in its middle after a click)"),
    ("Delete / Backspace", "delete the selected segment"),
    ("1-9", "assign the selected segment to speaker 1-9 (one more than the speakers creates a new one)"),
    ("Ctrl+Z / Ctrl+Shift+Z (Ctrl+Y)", "undo / redo"),
    ("U / Shift+U", "next / previous place where the model is unsure"),
    ("R", "mark the visible window as reviewed"),
    ("+ / -", "zoom in / out"),
]

KEYS_JS = """
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
      const a = (window.__pixitActivePlayer && window.__pixitActivePlayer()) || player();  // the transport's player
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
"""

NAVIGATION_KEYS = ("next", "prev", "unsure", "unsure_prev", "zoom_in", "zoom_out")


def layout(ui: UI) -> None:
    gr.Markdown("| key | action |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in SHORTCUTS)
                + "\n\nKeys work when the cursor is not in a text field. Click on the timeline to set"
                  " the cursor. On a speaker's lane, drag a segment's edge to resize it, its body to move"
                  " it (onto another lane to reassign it), an empty stretch to draw one (Alt: no snapping)."
                  " Drag on the waveform to zoom; double-click to see the whole meeting.", elem_id="shortcuts")


def apply_key(S: Session, action: str, t):
    """One shortcut; returns the player update. `t` is the player's playhead (meeting time)
    when something was played: splitting happens there, else at the cursor."""
    if t is not None and action == "split":
        try:
            timeline.set_cursor(S, float(t))
        except (TypeError, ValueError):
            pass
    if action in NAVIGATION_KEYS:
        return navigate(S, action)
    if action == "undo":
        edits.undo(S)
    elif action == "redo":
        edits.redo(S)
    elif action == "delete":
        edits.apply(S, "delete")
    elif action == "split":
        edits.apply(S, "split", S.cursor)
    elif action.startswith("speaker") and action[7:].isdigit():
        edits.apply(S, "set_speaker", int(action[7:]))
    elif action == "review":
        edits.apply(S, "review", S.t0, S.t1)
    else:
        raise PixitError(f"unknown shortcut {action!r}")
    return gr.skip()


def wire(ui: UI) -> None:
    outputs = ui.VIEW + [ui.player]

    @ui.guard
    def on_key(S, evt: gr.EventData):
        data = evt._data or {}
        out = apply_key(S, str(data.get("action", "")), data.get("t"))
        return ui.view(S) + (out,)

    ui.bridge.shortcut(on_key, [], outputs, api_visibility="private", trigger_mode="multiple", **EDIT_QUEUE)

    @ui.guard
    def press_key(S, action, playhead):
        """API twin of the keyboard bridge (same code path), for scripted clients and tests."""
        out = apply_key(S, str(action), playhead)
        return ui.view(S) + (out,)

    key_action = gr.Textbox(visible=False)
    key_time = gr.Number(visible=False)
    key_go = gr.Button(visible=False)
    key_go.click(press_key, [key_action, key_time], outputs, api_name="press_key", trigger_mode="multiple",
                 **EDIT_QUEUE)
