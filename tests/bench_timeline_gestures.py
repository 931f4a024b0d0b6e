"""Benchmark: timeline gestures in a real browser on a one-hour meeting with 1000 segments.

    .venv/bin/python tests/bench_timeline_gestures.py [--duration 3600] [--segments 1000] [--gestures 12]

Measures, in Debian chromium driven by playwright:
- gesture round trip: from the mouse button's release (a resize of a segment's edge on a 60 s view)
  to the first animation frame that shows the edited figure, i.e. server + transport + redraw;
- key edit round trip on the whole-meeting view (all 1000 segments drawn): Delete, then Ctrl+Z;
- the server's share: the gesture handler in process (edit + autosave + everything sent back);
- the design choice: plotly redraw time after changing one segment of 1000, drawn as 4 bar traces
  with our own hit-testing (what the app does) vs as 1000 editable plotly shapes (plotly's
  built-in shape dragging), each in a blank page with the plotly.js that ships with plotly.py.
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

# a figure of n segments on 4 lanes, as bars or as editable shapes; returns ms for newPlot and per-edit react
PLOTLY_COMPARE = """async ([n, duration, asShapes, edits]) => {
  const div = document.createElement('div'); div.style.width = '1300px'; div.style.height = '400px';
  document.body.appendChild(div);
  let seed = 1; const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const segs = Array.from({length: n}, () => { const a = rnd() * (duration - 5); return [a, a + 0.3 + rnd() * 3.7, Math.floor(rnd() * 4)]; });
  const bars = () => [0, 1, 2, 3].map((k) => { const s = segs.filter((x) => x[2] === k);
    return {type: 'bar', orientation: 'h', base: s.map((x) => x[0]), x: s.map((x) => x[1] - x[0]), y: s.map(() => k), width: 0.7}; });
  const shapes = () => segs.map(([a, b, k]) => ({type: 'rect', x0: a, x1: b, y0: k - 0.35, y1: k + 0.35, editable: true,
                                                 fillcolor: '#1f77b4', line: {width: 0.5}}));
  const layout = () => ({barmode: 'overlay', xaxis: {range: [0, duration]}, yaxis: {range: [3.5, -0.5]},
                         shapes: asShapes ? shapes() : [], width: 1300, height: 400});
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  let t = performance.now();
  await Plotly.newPlot(div, asShapes ? [] : bars(), layout(), {editable: asShapes});
  await frame();
  const first = performance.now() - t, times = [];
  for (let i = 0; i < edits; i++) {
    segs[(i * 37) % n][1] += 0.05;
    t = performance.now();
    await Plotly.react(div, asShapes ? [] : bars(), layout(), {editable: asShapes});
    await frame();
    times.push(performance.now() - t);
  }
  div.remove();
  times.sort((a, b) => a - b);
  return [first, times[Math.floor(times.length / 2)]];
}"""

GEOMETRY = """() => {
  const d = document.querySelector('#timeline .js-plotly-plot');
  const L = d._fullLayout, r = d.querySelector('.main-svg').getBoundingClientRect();
  return {x0: r.left + L.xaxis._offset + L.xaxis.d2p(0), perS: L.xaxis.d2p(1) - L.xaxis.d2p(0),
          lanes: d.layout.meta.speakers.map((_, k) => r.top + L.yaxis2._offset + L.yaxis2.d2p(k)),
          segs: d.layout.meta.segs};
}"""

# the time of the first animation frame whose figure no longer has segment `id`
GONE = """([id]) => {
  const d = document.querySelector('#timeline .js-plotly-plot');
  const m = d && d.layout && d.layout.meta;
  return m && !m.segs.some((x) => x[0] === id) ? performance.now() : false;
}"""


def _end_alone(seg: list, segs: list, gap: float) -> bool:
    """No other edge of the segment's lane within `gap` s of its end: a grab there is unambiguous."""
    return all(o is seg or o[3] != seg[3] or (abs(o[1] - seg[2]) > gap and abs(o[2] - seg[2]) > gap) for o in segs)


def _median_ms(xs: list[float]) -> float:
    return round(statistics.median(xs), 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--segments", type=int, default=1000)
    ap.add_argument("--gestures", type=int, default=12)
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    import plotly
    from playwright.sync_api import sync_playwright

    from app_fixtures import long_meeting_session, served
    from app import edits, gestures, timeline
    from app.access import COOKIE
    from app.panels.view import render_view

    tmp = Path(tempfile.mkdtemp(prefix="pixit-bench-"))

    atexit.register(shutil.rmtree, tmp, True)  # a one-hour meeting is ~340 MB
    S = long_meeting_session(tmp, args.duration, args.segments)
    report: dict = {"duration_s": args.duration, "segments": len(S.doc.segments)}

    # the server's share, in process: one resize gesture + everything the app sends back
    timeline.set_view(S, 600.0, 660.0)
    handler = []
    for i in range(args.gestures):
        seg = [s for s in S.doc.segments if s.start > 600 and s.duration > 0.5][i]
        t = time.perf_counter()
        gestures.apply_gesture(S, {"mode": "end", "id": seg.id, "start": seg.start, "end": seg.end - 0.2,
                                   "lane": S.doc.speakers.index(seg.speaker), "tol": 0.1})
        render_view(S)[0].to_json()
        handler.append((time.perf_counter() - t) * 1000)
    for _ in range(args.gestures):
        edits.undo(S)
    report["handler_ms_median"] = _median_ms(handler)

    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    with served(S.settings, tmp / "dl") as (demo, url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(url)
        page.wait_for_selector("#timeline", timeout=60_000)
        cookie = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE)
        C = demo.pixit_registry.get(cookie)  # this browser's session opens the benchmark meeting
        C.ws = S.ws
        C.open_meeting(S.meeting.id)
        timeline.set_view(C, 600.0, 660.0)
        C.autosave()
        page.reload()
        page.wait_for_function("() => { const d = document.querySelector('#timeline .js-plotly-plot');"
                               " return d && d.__pixitMouse && d.layout.meta && d.layout.meta.segs.length; }",
                               timeout=60_000)
        gesture = []
        for i in range(args.gestures):
            page.wait_for_timeout(350)  # the gesture code re-attaches to a new plot within 300 ms
            g = page.evaluate(GEOMETRY)
            segs = [s for s in g["segs"] if s[1] > 600.5 and s[2] < 659.5 and (s[2] - s[1]) * g["perS"] > 30
                    and _end_alone(s, g["segs"], 20 / g["perS"])]
            sid, a, b, lane = segs[i % len(segs)]
            new_end = round(b - 15 / g["perS"], 3)
            x = lambda t: g["x0"] + t * g["perS"]  # noqa: E731
            page.keyboard.down("Alt")  # no snapping: the end lands where the mouse is
            page.mouse.move(x(b) - 1, g["lanes"][lane])
            page.mouse.down()
            page.mouse.move(x(new_end), g["lanes"][lane], steps=4)
            page.mouse.up()
            page.keyboard.up("Alt")
            sent = page.evaluate("() => window.__pixitGestureAt")
            done = page.wait_for_function(
                "([id, b]) => { const d = document.querySelector('#timeline .js-plotly-plot');"
                " const s = d && d.layout.meta && d.layout.meta.segs.find((x) => x[0] === id);"
                " return s && s[2] < b - 0.01 ? performance.now() : false; }",
                arg=[sid, b], polling="raf", timeout=30_000).json_value()
            gesture.append(done - sent)
        report["gesture_roundtrip_ms_median"] = _median_ms(gesture)
        report["gesture_roundtrip_ms_max"] = round(max(gesture), 1)

        page.locator("#whole").click()
        page.wait_for_function("() => document.querySelector('#timeline .gtitle').textContent.includes('view 0:00.0-')",
                               timeout=30_000)
        keyed = []
        for i in range(max(2, args.gestures // 3)):
            page.wait_for_timeout(400)
            page.mouse.click(5, 5)  # focus the page, not a field
            page.keyboard.press("n")  # select the next segment
            page.wait_for_function("() => document.querySelector('#status').textContent.includes('Selected')",
                                   timeout=30_000)
            sid = C.selected
            t0 = page.evaluate("() => performance.now()")
            page.keyboard.press("Delete")
            t1 = page.wait_for_function(GONE, arg=[sid], polling="raf", timeout=30_000).json_value()
            keyed.append(t1 - t0)
            page.keyboard.press("Control+z")
            page.wait_for_function("() => document.querySelector('#status').textContent.includes('Undid')",
                                   timeout=30_000)
        report["whole_view_key_edit_ms_median"] = _median_ms(keyed)

        # plotly's editable shapes vs bar traces, same plotly.js, same 1000 segments
        blank = browser.new_page(viewport={"width": 1500, "height": 900})
        blank.set_content("<html><body></body></html>")
        blank.add_script_tag(path=str(plotly_js))
        for name, as_shapes in (("bars", False), ("shapes", True)):
            first, per_edit = blank.evaluate(PLOTLY_COMPARE, [args.segments, args.duration, as_shapes, 10])
            report[f"plotly_{name}_first_draw_ms"] = round(first, 1)
            report[f"plotly_{name}_redraw_per_edit_ms"] = round(per_edit, 1)
        browser.close()

    report["shapes_vs_bars_redraw_ratio"] = round(report["plotly_shapes_redraw_per_edit_ms"]
                                                  / report["plotly_bars_redraw_per_edit_ms"], 1)
    for k, v in report.items():
        print(f"{k}: {v}")
    ok = report["handler_ms_median"] <= 150 and report["gesture_roundtrip_ms_median"] <= 300
    print(f"targets (server <= 150 ms, gesture until redrawn <= 300 ms): {'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
