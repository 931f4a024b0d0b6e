"""Timeline figure, decimation and the 'model is unsure' cues (app/figures.py, app/insight.py)."""

import base64
import json

import numpy as np

from app import editing as E
from app.figures import (MAX_POINTS, Activations, FigureJSON, View, max_bins, minmax_bins, timeline_figure,
                         waveform_window)
from app.insight import leakage, near_threshold, next_place, short_turns, unsure_places
from app.workspace import PEAK_BLOCK, peak_pyramid


def _n(arr) -> int:
    return len(base64.b64decode(arr["bdata"])) // 4 if isinstance(arr, dict) else len(arr)


def test_minmax_keeps_peaks_and_bounds_points():
    x = np.zeros(1_000_003, np.float32)
    x[123_456] = 0.9
    x[777_777] = -0.8
    lo, hi = minmax_bins(x, 2000)
    assert len(lo) == len(hi) == 2000
    assert hi.max() == np.float32(0.9) and lo.min() == np.float32(-0.8)
    t, v = max_bins(np.arange(10, dtype=np.float32)[:, None], 3)
    assert v[:, 0].tolist() == [2, 5, 9]


def test_waveform_window_uses_peaks_for_long_and_raw_for_short():
    sr = 16000
    x = np.random.default_rng(0).standard_normal(sr * 600).astype(np.float32) * 0.1
    x[sr * 300] = 1.0
    peaks = peak_pyramid(x)
    assert peaks.shape == (len(x) // PEAK_BLOCK, 2)
    t, y = waveform_window(peaks, PEAK_BLOCK, sr, 0, 600, raw=lambda a, b: x[a:b])
    assert len(t) == len(y) <= 2 * MAX_POINTS and y.max() == 1.0
    assert t[0] >= 0 and t[-1] <= 600
    calls = []
    t, y = waveform_window(peaks, PEAK_BLOCK, sr, 299.9, 300.1, raw=lambda a, b: calls.append((a, b)) or x[a:b])
    assert calls and y.max() == 1.0 and 299.9 <= t[0] <= t[-1] <= 300.1


def test_figure_for_an_hour_is_small_and_clickable():
    rng = np.random.default_rng(0)
    segs = [(a, a + rng.uniform(0.3, 4), f"S{rng.integers(4)}") for a in np.sort(rng.uniform(0, 3590, 1000))]
    doc = E.mark_reviewed(E.new_doc(3600.0, segs, model_labels=["S0", "S1", "S2", "S3"]), 0, 600)
    acts = Activations(rng.random((225_000, 4)).astype(np.float32), 0.008, 0.016, ["S0", "S1", "S2", "S3"])
    at, ay = acts.window(0, 3600)
    peaks = peak_pyramid(np.zeros(16000 * 3600, np.float32) + 0.01)
    wt, wy = waveform_window(peaks, PEAK_BLOCK, 16000, 0, 3600)
    fig = timeline_figure(View(doc, 0, 3600, wt, wy, at, ay, acts.labels, 0.5,
                               unsure=[[5.0, 6.0, "threshold", "x"]], selected=doc.segments[3].id, cursor=12.0))
    text = FigureJSON(fig).to_json()
    assert len(text) < 400_000
    data = json.loads(text)["data"]
    assert max(_n(tr["x"]) for tr in data) <= 2 * MAX_POINTS
    bars = [tr for tr in data if tr["type"] == "bar" and tr["name"][0].isdigit()]
    assert sum(_n(tr["customdata"]) for tr in bars) == 1000  # every segment is a clickable bar with its id
    names = {tr["name"] for tr in data}
    assert {"overlap", "unsure", "reviewed", "selected", "waveform"} <= names
    lanes = json.loads(text)["layout"]["yaxis2"]["ticktext"]
    assert lanes[:4] == [f"{i + 1}: {s}" for i, s in enumerate(doc.speakers)] and lanes[-3:] == ["overlap", "unsure", "reviewed"]


def test_figure_window_only_draws_visible_segments():
    doc = E.new_doc(100.0, [(1, 2, "A"), (50, 51, "A"), (90, 91, "B")])
    data = timeline_figure(View(doc, 40, 60))["data"]
    bars = [tr for tr in data if tr["type"] == "bar"]
    assert sum(_n(tr["customdata"]) for tr in bars if "customdata" in tr) == 1


def test_unsure_cues():
    act = np.full((200, 2), 0.05, np.float32)
    act[50:100, 0] = 0.5  # hovering at the threshold for 0.8 s
    places = near_threshold(act, 0.0, 0.016, 0.5)
    assert len(places) == 1 and abs(places[0][0] - 0.8) < 1e-6 and places[0][2] == "threshold"
    assert short_turns([(0, 0.2, "A"), (1, 3, "B")]) == [(0, 0.2, "short turn", "A: 200 ms turn")]
    sr = 16000
    voice = np.random.default_rng(0).standard_normal(sr * 2).astype(np.float32)
    src = np.zeros((sr * 4, 2), np.float32)
    src[:sr * 2, 0] = voice
    src[:sr * 2, 1] = 0.3 * voice  # the same voice leaks into track 2
    src[sr * 2:, 1] = np.random.default_rng(1).standard_normal(sr * 2)
    leaks = leakage(src, sr, ["A", "B"])
    assert leaks and leaks[0][0] == 0.0 and leaks[-1][1] <= 2.0 and leaks[0][2] == "leakage"
    all_places = unsure_places(act, 0.0, 0.016, 0.5, [(0, 0.2, "A")], src, sr, ["A", "B"])
    assert [p[0] for p in all_places] == sorted(p[0] for p in all_places)
    assert next_place(all_places, 0.5)[0] > 0.5
    assert next_place(all_places, 100.0)[0] == all_places[0][0]  # wraps around
    assert next_place(all_places, 0.5, -1)[0] < 0.5


def test_nearby_cues_are_joined():
    act = np.full((1000, 1), 0.05, np.float32)
    act[100:130, 0] = 0.5
    act[140:170, 0] = 0.5  # 0.16 s later: the same hesitation
    act[600:640, 0] = 0.5
    places = unsure_places(act, 0.0, 0.016, 0.5, [], None, 16000, ["A"])
    assert [(round(a, 2), round(b, 2)) for a, b, *_ in places] == [(1.6, 2.72), (9.6, 10.24)]


def test_spectrogram_of_the_window_shows_a_tone_where_and_when_it_plays():
    from app.spectrogram import ROWS, image_data_uri, window_spectrogram

    sr = 16000
    t = np.arange(sr * 20) / sr
    x = (0.3 * np.sin(2 * np.pi * 1000 * t) * (t >= 10)).astype(np.float32)  # silence, then a 1 kHz tone
    x += 1e-4 * np.random.default_rng(0).standard_normal(len(t)).astype(np.float32)
    im = window_spectrogram(x, sr, columns=200)
    assert im.shape == (ROWS, 200) and im.dtype == np.uint8
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    expected_row = ROWS - 1 - int((mel(1000) - mel(sr / 512)) / (mel(sr / 2) - mel(sr / 512)) * ROWS)
    assert abs(int(np.argmax(im[:, 150])) - expected_row) <= 2  # the tone's band, bottom = low
    assert im[:, 150].max() >= 250 and im[:, 50].max() < 80  # loud while it plays, dark before
    assert image_data_uri(im).startswith("data:image/jpeg;base64,")


def test_the_figure_shows_the_spectrogram_or_says_to_zoom_in():
    doc = E.new_doc(600.0, [(1, 2, "A")])
    near = timeline_figure(View(doc=doc, t0=0, t1=30, spectrogram="data:image/jpeg;base64,xx"))["layout"]
    assert near["images"][0]["source"].startswith("data:image/jpeg") and near["images"][0]["sizex"] == 30
    far = timeline_figure(View(doc=doc, t0=0, t1=600))["layout"]
    assert not far["images"] and "zoom in to 5 min" in far["annotations"][0]["text"]
