"""Benchmark: what one session (or a crowd of anonymous callers) costs the others.

    .venv/bin/python tests/bench_app_sessions.py [--calls 300] [--turns 100000] [--edits 5] [--json OUT]

1. Memory under anonymous API calls (each: GET /config for a cookie, one /refresh), against a
   server that bounds its sessions (max_sessions 10) and, in the same run, one that effectively
   does not (max_sessions 10**6, the old behaviour's growth): RSS growth per 100 calls, live
   sessions, workspace folders.
2. Edit latency of session B alone, and while session A (a meeting with `--turns` turns) sends
   `--edits` edits just before it: with per-session ordering, B does not wait for A.
Run from the repository root (it imports tests/app_fixtures.py).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def anonymous_load(tmp: Path, max_sessions: int, calls: int) -> dict:
    from app_fixtures import find_fn, raw_call, served, visit
    from app.session import Settings

    settings = Settings(root=tmp / f"ws{max_sessions}", model="default", max_sessions=max_sessions)
    with served(settings, tmp / "dl") as (demo, url, _):
        refresh = find_fn(demo, "refresh")

        def one(i: int) -> None:
            res = raw_call(url, visit(url), f"anon{max_sessions}-{i:07d}", refresh)
            assert res["success"], res

        for i in range(20):
            one(i)
        gc.collect()
        before, t = rss_mb(), time.perf_counter()
        for i in range(calls):
            one(100 + i)
        gc.collect()
        return {"max_sessions": max_sessions, "calls": calls,
                "rss_growth_mb_per_100_calls": round((rss_mb() - before) * 100 / calls, 2),
                "ms_per_call": round((time.perf_counter() - t) * 1000 / calls, 1),
                "live_sessions": len(demo.pixit_registry),
                "gradio_tab_states": len(demo.server_app.state_holder.session_data),
                "workspace_folders": sum(1 for _ in settings.root.iterdir()) if settings.root.exists() else 0}


def cross_session_latency(tmp: Path, turns: int, edits: int) -> dict:
    import httpx
    from gradio_client import Client

    from app import runs
    from app_fixtures import find_fn, long_waveform, served, synthetic_result
    from app.access import COOKIE
    from app.session import Settings

    duration = max(600.0, turns / 50)
    settings = Settings(root=tmp / "wsl", model="default", max_events_per_session=edits + 2)
    with served(settings, tmp / "dl2") as (demo, url, _):
        a, b = Client(url, verbose=False, download_files=False), Client(url, verbose=False, download_files=False)
        reg = demo.pixit_registry
        A, B = reg.get(a.cookies[COOKIE]), reg.get(b.cookies[COOKIE])
        for S, n in ((A, turns), (B, 50)):
            m = S.ws.add_meeting(long_waveform(duration if S is A else 60.0), "m.wav", "upload")
            S.open_meeting(m.id)
            runs.store_result(S, synthetic_result(S.meeting.duration, n, 4, with_sources=False), "m", "m")
        add = find_fn(demo, "add_segment")

        def b_edit(i: int) -> float:
            t = time.perf_counter()
            b.predict(1.0 + 0.01 * i, 1.5 + 0.01 * i, "bench", api_name="/add_segment")
            return time.perf_counter() - t

        alone = [b_edit(i) for i in range(5)]
        t = time.perf_counter()
        a.predict(5.0, 5.5, "bench", api_name="/add_segment")
        a_edit = time.perf_counter() - t
        busy = []
        for rnd in range(3):
            with httpx.Client(cookies=a.cookies, timeout=600) as h:
                for i in range(edits):  # A's edits, queued back to back just before B's
                    body = {"data": [10.0 + rnd + 0.01 * i, 10.5 + rnd + 0.01 * i, "bench"], "fn_index": add._id,
                            "session_hash": a.session_hash}
                    h.post(url + "gradio_api/queue/join", json=body).raise_for_status()
                busy.append(b_edit(10 + rnd))
                while A.lock.busy():  # let A's edits finish before the next round
                    time.sleep(0.05)
        return {"turns_in_A": turns, "A_edit_s": round(a_edit, 2), "A_edits_queued_before_B": edits,
                "B_edit_alone_ms_median": round(1000 * statistics.median(alone), 1),
                "B_edit_while_A_busy_ms_median": round(1000 * statistics.median(busy), 1),
                "ratio_busy_over_alone": round(statistics.median(busy) / statistics.median(alone), 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--turns", type=int, default=100000)
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    tmp = Path(tempfile.mkdtemp(prefix="pixit-bench-sessions-"))
    atexit.register(shutil.rmtree, tmp, True)  # the sessions' workspaces
    report = {"anonymous": [anonymous_load(tmp, 10, args.calls), anonymous_load(tmp, 10**6, args.calls)],
              "cross_session": cross_session_latency(tmp, args.turns, args.edits)}
    bounded, unbounded = report["anonymous"]
    print(f"anonymous calls, RSS growth per 100 calls: {bounded['rss_growth_mb_per_100_calls']} MB with "
          f"max_sessions 10 ({bounded['live_sessions']} sessions, {bounded['gradio_tab_states']} Gradio tab states, "
          f"{bounded['workspace_folders']} folders) vs {unbounded['rss_growth_mb_per_100_calls']} MB unbounded "
          f"({unbounded['live_sessions']} sessions, {unbounded['workspace_folders']} folders)")
    x = report["cross_session"]
    print(f"session B's edit: {x['B_edit_alone_ms_median']} ms alone, {x['B_edit_while_A_busy_ms_median']} ms right after "
          f"{x['A_edits_queued_before_B']} edits of session A ({x['turns_in_A']} turns, {x['A_edit_s']} s per edit): "
          f"ratio {x['ratio_busy_over_alone']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
