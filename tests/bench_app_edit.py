"""Benchmark: the edit round trip on a one-hour meeting with 1000 segments.

    .venv/bin/python tests/bench_app_edit.py [--duration 3600] [--segments 1000] [--edits 30] [--no-server]

Measures, for a mix of edits (move, set speaker, split, undo, delete, add):
- handler time: the edit plus everything the app sends back (timeline figure JSON, table, lists),
  in process;
- server round trip: the same edits through a launched server with gradio_client (queue, JSON,
  HTTP), i.e. what the browser waits for minus rendering;
- the size in bytes of the timeline figure the browser receives (whole-meeting view).
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


def _stats(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
    return f"median {statistics.median(xs) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {xs[-1] * 1000:.1f} ms"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--segments", type=int, default=1000)
    ap.add_argument("--speakers", type=int, default=4)
    ap.add_argument("--edits", type=int, default=30)
    ap.add_argument("--no-server", action="store_true", help="skip the client round trip")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    from app_fixtures import long_meeting_session, served
    from app.access import COOKIE
    from app import edits, timeline
    from app.panels.view import render_view

    tmp = Path(tempfile.mkdtemp(prefix="pixit-bench-"))

    atexit.register(shutil.rmtree, tmp, True)  # a one-hour meeting is ~340 MB
    t = time.perf_counter()
    S = long_meeting_session(tmp, args.duration, args.segments, args.speakers)
    settings = S.settings
    setup = time.perf_counter() - t
    n_seg = len(S.doc.segments)
    fig_json = render_view(S)[0].to_json()
    whole_bytes = len(fig_json.encode())
    traces = json.loads(fig_json)["data"]

    def one_edit(S, i):
        seg = S.doc.segments[(i * 37) % len(S.doc.segments)]
        timeline.select(S, seg.id)
        kind = i % 6
        if kind == 0:
            edits.apply(S, "move", seg.start, max(seg.start + 0.05, seg.end - 0.01))
        elif kind == 1:
            other = [s for s in S.doc.speakers if s != seg.speaker][0]
            edits.apply(S, "set_speaker", other)
        elif kind == 2:
            edits.apply(S, "split", (seg.start + seg.end) / 2)
        elif kind == 3:
            edits.undo(S)
        elif kind == 4:
            edits.apply(S, "delete")
        else:
            edits.apply(S, "add", seg.start, seg.end, seg.speaker)

    # in-process handler time: edit + autosave + full VIEW payload (figure JSON, table, lists)
    import gradio as gr
    import orjson

    from app.panels.segments import TABLE_HEADERS

    table = gr.Dataframe(headers=TABLE_HEADERS, render=False)
    plot = gr.Plot(render=False)
    timeline.whole(S)
    times = []
    for i in range(args.edits):
        t = time.perf_counter()
        one_edit(S, i)
        out = render_view(S)
        # what gradio does with the two big outputs before sending them: postprocess + JSON
        orjson.dumps(plot.postprocess(out[0]).model_dump())
        orjson.dumps(table.postprocess(out[-1]).model_dump())
        times.append(time.perf_counter() - t)
    report = {
        "duration_s": args.duration, "segments": n_seg, "speakers": args.speakers, "setup_s": round(setup, 2),
        "timeline_bytes_whole_meeting": whole_bytes,
        "timeline_max_points_per_trace": max(_points(tr) for tr in traces),
        "handler_median_ms": round(statistics.median(times) * 1000, 1),
        "handler_max_ms": round(max(times) * 1000, 1),
    }
    print(f"meeting: {args.duration:.0f} s, {n_seg} segments, {args.speakers} speakers (setup {setup:.1f} s)")
    print(f"timeline sent to the browser (whole meeting): {whole_bytes} bytes, "
          f"{len(traces)} traces, at most {report['timeline_max_points_per_trace']} points per trace")
    print(f"server time per edit (edit + autosave + figure + table, postprocessed to JSON): {_stats(times)}")

    if not args.no_server:
        with served(settings, tmp / "dl") as (demo, url, client):
            registry = demo.pixit_registry
            client.predict(api_name="/refresh")  # creates this client's session
            # attach the client's session to the benchmark meeting
            C = registry.get(client.cookies[COOKIE])
            C.ws = S.ws
            C.open_meeting(S.meeting.id)
            timeline.whole(C)
            rt = []
            payload = []
            for i in range(args.edits):
                seg = C.doc.segments[(i * 53) % len(C.doc.segments)]
                client.predict(seg.id, api_name="/select_segment")
                t = time.perf_counter()
                if i % 3 == 0:
                    out = client.predict(seg.start, round(max(seg.start + 0.05, seg.end - 0.01), 3), api_name="/move_segment")
                elif i % 3 == 1:
                    other = [s for s in C.doc.speakers if s != seg.speaker][0]
                    out = client.predict(other, api_name="/set_speaker")
                else:
                    out = client.predict(api_name="/undo")
                rt.append(time.perf_counter() - t)
                payload.append(len(json.dumps(out[0]).encode()))
            report["client_roundtrip_median_ms"] = round(statistics.median(rt) * 1000, 1)
            report["client_roundtrip_max_ms"] = round(max(rt) * 1000, 1)
            report["timeline_bytes_per_edit_median"] = int(statistics.median(payload))
            noop = []
            for _ in range(args.edits):
                t = time.perf_counter()
                client.predict(api_name="/stop")  # a no-op endpoint: the queue + transport overhead alone
                noop.append(time.perf_counter() - t)
            report["noop_roundtrip_median_ms"] = round(statistics.median(noop) * 1000, 1)
            print(f"client round trip via gradio_client (edit -> all outputs): {_stats(rt)}")
            print(f"client round trip of a no-op endpoint (gradio queue + HTTP only): {_stats(noop)}")
            print(f"timeline payload per edit response: {report['timeline_bytes_per_edit_median']} bytes")
    target = report["handler_median_ms"]
    print(f"target <= 150 ms server time per edit: {'met' if target <= 150 else 'NOT met'} ({target} ms median)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def _points(trace: dict) -> int:
    x = trace.get("x")
    if isinstance(x, dict) and "bdata" in x:
        import base64

        return len(base64.b64decode(x["bdata"])) // 4
    return len(x or [])


if __name__ == "__main__":
    sys.exit(main())
