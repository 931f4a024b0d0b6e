"""The timeline figure: waveform overview, spectrogram, per-speaker lanes, activation curves, overlaps.

The figure is written as a plain plotly JSON dict (no plotly.graph_objects validation, which is
slow for big figures) with numeric arrays as base64 typed arrays. Every trace is decimated on the
server to at most `MAX_POINTS` points whatever the meeting's length: the waveform as min/max pairs
(peaks survive), activations as per-bin maxima (short turns survive).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import numpy as np

from app.editing import Doc, overlaps
from app.spectrogram import MAX_SPAN as SPECTROGRAM_SPAN

MAX_POINTS = 2000  # bins per trace (a min/max waveform has 2 values per bin)
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22"]
KIND_COLORS = {"overlap": "rgba(214,39,40,0.55)", "unsure": "rgba(255,160,0,0.85)",
               "reviewed": "rgba(44,160,44,0.75)"}


def color_of(i: int) -> str:
    return COLORS[i % len(COLORS)]


def _arr(x, dtype="f4") -> dict:
    """A plotly typed array ({dtype, bdata}) - ~4x smaller than a JSON list of floats."""
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32 if dtype == "f4" else np.int32))
    return {"dtype": dtype, "bdata": base64.b64encode(a.tobytes()).decode("ascii")}


def minmax_bins(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of `bins` equal slices of x (fewer bins when x is short)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    bins = max(1, min(bins, len(x)))
    edges = np.linspace(0, len(x), bins + 1).astype(np.int64)
    lo = np.minimum.reduceat(x, edges[:-1])
    hi = np.maximum.reduceat(x, edges[:-1])
    return lo, hi


def max_bins(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin index centres, per-bin max) of a (F, K) curve array, column by column."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros(0), x
    bins = max(1, min(bins, n))
    edges = np.linspace(0, n, bins + 1).astype(np.int64)
    return (edges[:-1] + edges[1:]) / 2.0, np.maximum.reduceat(x, edges[:-1], axis=0)


def waveform_window(peaks: np.ndarray, block: int, sample_rate: int, t0: float, t1: float,
                    bins: int = MAX_POINTS, raw=None) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved (time, value) arrays drawing the min/max envelope of [t0, t1].

    Uses the stored block peaks, or `raw(a, b)` samples when the window is short enough that the
    blocks would be coarser than the bins.
    """
    a, b = int(t0 * sample_rate), int(t1 * sample_rate)
    if b <= a:
        return np.zeros(0), np.zeros(0)
    if raw is not None and (b - a) / bins < block * 2:
        x = raw(a, b)
        lo, hi = minmax_bins(x, bins)
        n = len(lo)
        t = t0 + (np.arange(n) + 0.5) * (t1 - t0) / max(n, 1)
    else:
        pa, pb = a // block, max(a // block + 1, -(-b // block))
        p = peaks[pa:pb]
        if len(p) == 0:
            return np.zeros(0), np.zeros(0)
        lo, _ = minmax_bins(p[:, 0], bins)
        _, hi = minmax_bins(p[:, 1], bins)
        n = len(lo)
        span0, span1 = pa * block / sample_rate, min(pb * block, b) / sample_rate
        t = span0 + (np.arange(n) + 0.5) * (span1 - span0) / n
    ts = np.repeat(t, 2)
    ys = np.empty(2 * len(lo), np.float32)
    ys[0::2], ys[1::2] = lo, hi
    return ts, ys


@dataclass
class Activations:
    """Per-speaker activation curves (frames, K) with their frame times."""

    data: np.ndarray  # (F, K) in [0, 1]
    start: float  # time of frame 0's centre
    step: float
    labels: list[str]  # model labels, column order
    threshold: float = 0.5

    def window(self, t0: float, t1: float, bins: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
        f0 = max(0, int((t0 - self.start) / self.step))
        f1 = min(len(self.data), int(np.ceil((t1 - self.start) / self.step)) + 1)
        if f1 <= f0:
            return np.zeros(0), np.zeros((0, self.data.shape[1]))
        centres, values = max_bins(self.data[f0:f1], bins)
        return self.start + (f0 + centres) * self.step, values


@dataclass
class View:
    """Everything the figure shows."""

    doc: Doc
    t0: float
    t1: float
    wave_t: np.ndarray | None = None
    wave_y: np.ndarray | None = None
    act_t: np.ndarray | None = None
    act_y: np.ndarray | None = None  # (n, K)
    act_labels: list[str] = field(default_factory=list)  # model labels of act_y columns
    threshold: float = 0.5
    unsure: list = field(default_factory=list)  # [(start, end, kind, detail)]
    selected: int | None = None
    cursor: float | None = None
    title: str = ""
    spectrogram: str | None = None  # image data URI of the window (app/spectrogram.py); None: too wide


def lanes(doc: Doc) -> list[str]:
    return list(doc.speakers) + ["overlap", "unsure", "reviewed"]


def _in_window(items, t0, t1):
    return [it for it in items if it[1] >= t0 and it[0] <= t1]


def timeline_figure(view: View) -> dict:
    """The plotly figure dict (JSON-serialisable)."""
    doc, t0, t1 = view.doc, view.t0, view.t1
    speakers = list(doc.speakers)
    lane_names = lanes(doc)
    nl = len(lane_names)
    traces: list[dict] = []

    # --- row 1: waveform envelope (y) + overlap shading
    ov = _in_window(overlaps(doc), t0, t1)
    if view.wave_t is not None and len(view.wave_t):
        traces.append({"type": "scatter", "mode": "lines", "name": "waveform", "x": _arr(view.wave_t),
                       "y": _arr(view.wave_y), "line": {"width": 1, "color": "#555"}, "hoverinfo": "skip",
                       "showlegend": False, "yaxis": "y"})
    if ov:
        xs, ys = [], []
        for a, b in ov:
            xs += [a, a, b, b, a, None]
            ys += [-1, 1, 1, -1, -1, None]
        traces.append({"type": "scatter", "mode": "lines", "fill": "toself", "name": "overlapped speech",
                       "x": xs, "y": ys, "line": {"width": 0}, "fillcolor": "rgba(214,39,40,0.18)",
                       "hoverinfo": "skip", "yaxis": "y", "showlegend": False})

    # --- row 2: lanes with segments (one bar trace per speaker; customdata = segment id)
    lane_of = {name: i for i, name in enumerate(lane_names)}
    segs = [s for s in doc.segments if s.end >= t0 and s.start <= t1]
    by_spk: dict[str, list] = {}
    for s in segs:
        by_spk.setdefault(s.speaker, []).append(s)
    for i, spk in enumerate(speakers):
        ss = by_spk.get(spk, [])
        traces.append({
            "type": "bar", "orientation": "h", "name": f"{i + 1}: {spk}", "yaxis": "y2",
            "base": _arr([s.start for s in ss]), "x": _arr([s.duration for s in ss]),
            "y": _arr([lane_of[spk]] * len(ss)), "customdata": _arr([s.id for s in ss], "i4"),
            "width": 0.7, "marker": {"color": color_of(i), "line": {"width": 0.5, "color": "white"}},
            "hovertemplate": f"{spk}<br>%{{base:.2f}} s + %{{x:.2f}} s<br>segment %{{customdata}}<extra></extra>",
            "legendgroup": spk, "showlegend": False,
        })
    extra = {"overlap": ov, "unsure": [(a, b) for a, b, *_ in _in_window(view.unsure, t0, t1)],
             "reviewed": _in_window(doc.reviewed, t0, t1)}
    for kind, items in extra.items():
        if not items:
            continue
        traces.append({
            "type": "bar", "orientation": "h", "name": kind, "yaxis": "y2",
            "base": _arr([a for a, _ in items]), "x": _arr([b - a for a, b in items]),
            "y": _arr([lane_of[kind]] * len(items)), "width": 0.5,
            "marker": {"color": KIND_COLORS[kind]}, "showlegend": False,
            "hovertemplate": f"{kind}: %{{base:.2f}} s + %{{x:.2f}} s<extra></extra>",
        })
    if view.selected is not None and doc.has(view.selected):
        s = doc.get(view.selected)
        traces.append({
            "type": "bar", "orientation": "h", "name": "selected", "yaxis": "y2",
            "base": [s.start], "x": [s.duration], "y": [lane_of[s.speaker]], "customdata": [s.id],
            "width": 0.9, "marker": {"color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#000"}},
            "hovertemplate": f"selected: {s.speaker} {s.start:.2f}-{s.end:.2f} s<extra></extra>", "showlegend": False,
        })

    # --- row 3: activation curves (model speakers, named after their current speaker)
    if view.act_t is not None and view.act_y is not None and len(view.act_t):
        x = _arr(view.act_t)
        for k, label in enumerate(view.act_labels):
            current = doc.alias(label) or label
            i = speakers.index(current) if current in speakers else len(speakers) + k  # no lane: a colour no lane has
            traces.append({"type": "scatter", "mode": "lines", "name": f"{current} activation", "yaxis": "y3",
                           "x": x, "y": _arr(view.act_y[:, k]), "line": {"width": 1.2, "color": color_of(i)}, "opacity": 0.8,
                           "hovertemplate": f"{current} (model {label}) %{{y:.2f}}<extra></extra>",
                           "showlegend": False})

    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y3", "y0": view.threshold,
               "y1": view.threshold, "line": {"dash": "dash", "width": 1, "color": "#888"}}]
    if view.cursor is not None:
        shapes.append({"type": "line", "xref": "x", "x0": view.cursor, "x1": view.cursor, "yref": "paper",
                       "y0": 0, "y1": 1, "line": {"width": 1.5, "color": "#e6007e"}})
    if view.selected is not None and doc.has(view.selected):  # the selected segment's drag handles
        s = doc.get(view.selected)
        lane = lane_of[s.speaker]
        shapes += [{"type": "line", "xref": "x", "x0": t, "x1": t, "yref": "y2", "y0": lane - 0.42, "y1": lane + 0.42,
                    "line": {"width": 5, "color": "#000"}} for t in (s.start, s.end)]
    # --- the spectrogram row: an image stretched over the window, or why there is none
    traces.append({"type": "scatter", "mode": "markers", "x": [t0, t1], "y": [0, 1], "yaxis": "y4",
                   "marker": {"opacity": 0}, "hoverinfo": "skip", "showlegend": False, "name": "spectrogram"})
    images, notes = [], []
    if view.spectrogram:
        images.append({"source": view.spectrogram, "xref": "x", "yref": "y4", "x": t0, "y": 1, "sizex": t1 - t0,
                       "sizey": 1, "sizing": "stretch", "xanchor": "left", "yanchor": "top", "layer": "below"})
    else:
        notes.append({"text": f"zoom in to {SPECTROGRAM_SPAN / 60:.0f} min or less to see the spectrogram",
                      "xref": "paper", "yref": "y4", "x": 0.5, "y": 0.5, "showarrow": False,
                      "font": {"size": 12, "color": "#888"}})
    layout = {
        "height": 280 + 26 * nl,  # fits a 1366x768 laptop with the transport bar (app/main.py layout)
        "images": images, "annotations": notes,
        # what the browser's gesture code hit-tests against (app/panels/timeline.js)
        "meta": {"speakers": speakers, "duration": doc.duration,
                 "segs": [[s.id, s.start, s.end, lane_of[s.speaker]] for s in segs]},
        "margin": {"l": 120, "r": 10, "t": 30, "b": 35},
        "barmode": "overlay", "dragmode": "zoom", "hovermode": "closest", "clickmode": "event",
        "uirevision": f"{t0:.3f}-{t1:.3f}",
        "title": {"text": view.title, "font": {"size": 13}, "x": 0.01, "y": 0.99},
        "showlegend": False,
        "xaxis": {"range": [t0, t1], "title": {"text": "time (s)"}, "showgrid": True, "zeroline": False,
                  "anchor": "y3"},
        "yaxis": {"domain": [0.87, 1.0], "range": [-1.05, 1.05], "fixedrange": True, "title": {"text": "wave"},
                  "showticklabels": False, "zeroline": False},
        "yaxis4": {"domain": [0.71, 0.855], "range": [0, 1], "fixedrange": True, "title": {"text": "spectrum"},
                   "showticklabels": False, "showgrid": False, "zeroline": False},
        "yaxis2": {"domain": [0.25, 0.695], "range": [nl - 0.5, -0.5], "fixedrange": True,
                   "tickmode": "array", "tickvals": list(range(nl)),
                   "ticktext": [f"{i + 1}: {n}" if i < len(speakers) else n for i, n in enumerate(lane_names)],
                   "showgrid": False, "zeroline": False},
        "yaxis3": {"domain": [0.0, 0.23], "range": [-0.02, 1.02], "fixedrange": True,
                   "title": {"text": "activation"}, "zeroline": False},
        "shapes": shapes,
    }
    return {"data": traces, "layout": layout}


class FigureJSON:
    """What gr.Plot accepts as a plotly figure: any object with to_json()."""

    def __init__(self, fig: dict):
        self.fig = fig
        self._json: str | None = None

    def to_json(self) -> str:
        if self._json is None:
            self._json = json.dumps(self.fig, separators=(",", ":"))
        return self._json


def empty_figure(message: str) -> dict:
    return {"data": [], "layout": {
        "height": 260, "xaxis": {"visible": False}, "yaxis": {"visible": False},
        "annotations": [{"text": message, "showarrow": False, "font": {"size": 15}, "xref": "paper",
                         "yref": "paper", "x": 0.5, "y": 0.5}]}}
