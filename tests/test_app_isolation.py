"""Session isolation of the launched app, replayed through the real server the way the security
probe did it: gradio_client for the users, raw HTTP (httpx) for what a hand-written client can send.

Alice is the victim (her own client and cookie); Mallory is a second client that knows
everything that can be learnt from outside: Alice's workspace id (read here from the server's
disk: the strongest thing an attacker could know), the URLs Alice was given, the server paths
Gradio hands out."""

import re
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from app_fixtures import (file_data, find_fn, raw_call, raw_upload, refused, served, synthetic_meeting,  # noqa: E402
                          tiny_workbench, visit)
from app.access import COOKIE, workspace_id  # noqa: E402
from app.session import Settings  # noqa: E402

SUMMARY, TABLE = 2, 12
GRADIO_TMP = str(Path(tempfile.gettempdir()) / "gradio")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("iso")
    meeting, settings = tiny_workbench(tmp, duration=12.0, seed=5)
    with served(settings, tmp / "dl") as (demo, url, _):
        alice = Client(url, verbose=False, download_files=False)
        alice.predict(handle_file(str(meeting["audio"])), api_name="/upload_meeting")
        alice.predict(1.0, 2.5, "alice", api_name="/add_segment")
        yield {"demo": demo, "url": url.rstrip("/") + "/", "alice": alice, "meeting": meeting, "tmp": tmp,
               "settings": settings, "root": Path(settings.root)}


def rows(out):
    return out[TABLE]["data"]


def workspace_with_meetings(root: Path) -> list[str]:
    """Names of the workspace folders that hold a meeting (on the server's disk)."""
    return sorted(d.name for d in root.iterdir()
                  if d.is_dir() and (d / "meetings").is_dir() and any((d / "meetings").iterdir()))


def urls_in(value) -> list[str]:
    """Every 'url' field in an endpoint's output."""
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == "url" and isinstance(v, str)] + \
            [u for v in value.values() for u in urls_in(v)]
    if isinstance(value, (list, tuple)):
        return [u for v in value for u in urls_in(v)]
    return []


def absolute(app, url: str) -> str:
    return url if url.startswith("http") else app["url"] + url.lstrip("/")


def test_page_load_does_not_accept_a_workspace_id(app):
    """Breach 1: joining the page-load event with Alice's workspace id gave Mallory her meeting."""
    victim = workspace_with_meetings(app["root"])
    assert len(victim) == 1
    mallory = Client(app["url"], verbose=False, download_files=False)
    load = find_fn(app["demo"], "open_session")
    raw_call(app["url"], mallory.cookies, mallory.session_hash, load, victim[0])
    assert "open a meeting first" in refused(mallory.predict(5.0, 6.0, "mallory", api_name="/add_segment"))
    assert "No meeting open" in mallory.predict(api_name="/refresh")[SUMMARY]
    mine = rows(app["alice"].predict(api_name="/refresh"))
    assert [r[1] for r in mine] == ["alice"]


def test_config_holds_no_secret(app):
    """Breach 2: /config gave every visitor the secret that encrypts the browser's session id."""
    text = httpx.get(app["url"] + "config").text
    config = httpx.get(app["url"] + "config").json()
    for comp in config["components"]:
        assert comp.get("type") != "browserstate", comp
        assert "secret" not in (comp.get("props") or {}), comp
    for secret in app["root"].glob(".*secret*"):
        assert secret.read_text().strip() not in text
    page = httpx.get(app["url"]).text
    for name in workspace_with_meetings(app["root"]):
        assert name not in text and name not in page
    assert str(app["root"]) not in text and str(app["settings"].model) not in text


def test_files_are_served_only_to_the_session_that_made_them(app):
    """Breach 3: clips and exports downloaded with no session at all, and from another session."""
    alice = app["alice"]
    clip = alice.predict("mixture", api_name="/play")["url"]
    exported = urls_in(alice.predict(api_name="/export"))
    assert clip and len(exported) >= 2
    mallory = visit(app["url"])
    for url in [clip] + exported:
        url = absolute(app, url)
        assert httpx.get(url, cookies=alice.cookies).status_code == 200, url  # the owner gets it
        assert httpx.get(url).status_code in (401, 403, 404), url  # no session
        assert httpx.get(url, cookies=mallory).status_code in (401, 403, 404), url  # another session
    rttm = [u for u in exported if ".rttm" in u][0]
    assert "alice" in httpx.get(absolute(app, rttm), cookies=alice.cookies).text


def was_refused(res: dict) -> bool:
    """A raw call refused: by Gradio (an error), or by the handler (an answer that says Not done)."""
    return not res["success"] or str(res["output"]["data"][1]).startswith("**Not done:**")


def test_uploaded_files_belong_to_their_uploader(app):
    """Breach 3: an uploaded original downloaded without a session, and another session could pass
    its server path as its own upload or import input."""
    alice, url = app["alice"], app["url"]
    audio = raw_upload(url, alice.cookies, app["meeting"]["audio"])[0]
    rttm = raw_upload(url, alice.cookies, app["meeting"]["rttm"])[0]
    for path in (audio, rttm):
        assert httpx.get(url + "gradio_api/file=" + path).status_code in (401, 403, 404)
    mallory = Client(url, verbose=False, download_files=False)
    upload = find_fn(app["demo"], "upload_meeting")
    res = raw_call(url, mallory.cookies, mallory.session_hash, upload, file_data(audio))
    assert was_refused(res), res
    assert "No meeting open" in mallory.predict(api_name="/refresh")[SUMMARY]
    # Mallory opens a meeting of her own, then imports Alice's RTTM by its server path
    mallory.predict(handle_file(str(app["meeting"]["audio"])), api_name="/upload_meeting")
    res = raw_call(url, mallory.cookies, mallory.session_hash, find_fn(app["demo"], "import_rttm"), file_data(rttm))
    assert was_refused(res), res
    assert rows(mallory.predict(api_name="/refresh")) == []
    # a file of Alice's workspace, named by its path on the server
    wav = next((app["root"] / workspace_with_meetings(app["root"])[0] / "meetings").glob("*/audio.wav"))
    res = raw_call(url, mallory.cookies, mallory.session_hash, upload, file_data(str(wav)))
    assert was_refused(res), res


def test_no_server_path_reaches_the_client(app):
    """Breach 4: the workspace root in clip URLs, Gradio's upload folder in upload errors, and a
    model-folder box that told whether any typed path held a model."""
    alice, root = app["alice"], str(app["root"])
    seen = [alice.predict("mixture", api_name="/play")["url"]] + urls_in(alice.predict(api_name="/export"))
    junk = app["tmp"] / "corrupt.wav"
    junk.write_bytes(b"RIFF....WAVEfmt " + bytes(200))
    message = refused(alice.predict(handle_file(str(junk)), api_name="/upload_meeting"))
    seen.append(message)
    assert "corrupt.wav" in message
    for text in seen:
        assert root not in text and GRADIO_TMP not in text, text
        assert not re.search(r"(^|[\s'\"(=])/(tmp|home|root|usr|etc|var)/", text), text
    # the model-folder box: a real model folder outside the server's model folders is refused with
    # the same words as a path that does not exist (no oracle), and neither is echoed as a path
    import shutil

    other = app["tmp"] / "elsewhere" / "model"
    shutil.copytree(app["settings"].model, other)
    config = httpx.get(app["url"] + "config").json()
    choice = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "model_dd"][0]["props"]["value"]
    answers = []
    for typed in (str(other), str(app["tmp"] / "nowhere" / "model")):
        message = refused(alice.predict(choice, typed, "auto", 2, 1, 4, api_name="/run_model"))
        answers.append(message.replace(typed, "<typed>"))
        assert typed not in message
    assert answers[0] == answers[1]


# ------------------------------------------------------------------ the credential itself
def test_the_cookie_is_httponly_samesite_and_nowhere_in_the_page(app):
    r = httpx.get(app["url"])
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(COOKIE + "=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    token = r.cookies[COOKIE]
    assert token not in r.text and token not in httpx.get(app["url"] + "config", cookies=r.cookies).text
    # a visitor who has one keeps it: the page does not hand out a new one, even next to another
    # local app's odd cookies (cookies are per host, not per port)
    assert "set-cookie" not in httpx.get(app["url"], cookies=r.cookies).headers
    odd = f'j={{"k":1}}; {COOKIE}={token}; x"y=1'
    assert "set-cookie" not in httpx.get(app["url"], headers={"cookie": odd}).headers
    # the folder of that session is a one-way hash of the token, made only when something is stored
    assert workspace_id(token) != token and not (app["root"] / workspace_id(token)).exists()


def test_requests_without_the_session_cookie_are_refused(app):
    load = find_fn(app["demo"], "refresh")
    res = raw_call(app["url"], None, "nocookie0001", load)
    assert res["status"] == 401 and "no session" in res["output"]
    assert httpx.get(app["url"] + "gradio_api/info").status_code == 401
    forged = {COOKIE: "not-a-token"}
    assert raw_call(app["url"], forged, "nocookie0002", load)["status"] == 401


def test_a_session_hash_belongs_to_its_session(app):
    """The gradio session hash travels in URLs (queue/data, heartbeat): knowing Alice's must not
    let Mallory read her event stream or spoof her results."""
    alice, url = app["alice"], app["url"]
    mallory = visit(url)
    r = httpx.get(url + "gradio_api/queue/data", params={"session_hash": alice.session_hash}, cookies=mallory)
    assert r.status_code == 403
    res = raw_call(url, mallory, alice.session_hash, find_fn(app["demo"], "refresh"))
    assert res["status"] == 403
    assert "alice" in str(alice.predict(api_name="/refresh")[TABLE])  # Alice's own still works


# ------------------------------------------------------------------ limits
def test_a_slow_session_does_not_hold_up_another(app):
    """Edits are ordered per session, not in one global queue: while Alice's session is busy
    (its lane held here), Mallory's edit goes through; Alice's waits and is then applied."""
    alice = app["alice"]
    S = app["demo"].pixit_registry.get(alice.cookies[COOKIE])
    mallory = Client(app["url"], verbose=False, download_files=False)
    mallory.predict(handle_file(str(app["meeting"]["audio"])), api_name="/upload_meeting")
    with S.lock:
        job = alice.submit(3.0, 4.0, "held", api_name="/add_segment")
        out = mallory.predict(5.0, 6.0, "free", api_name="/add_segment")
        assert [r[1] for r in rows(out)] == ["free"]
        assert not job.done()
    assert "held" in {r[1] for r in rows(job.result())}
    alice.predict(api_name="/undo")


def test_requests_of_one_session_apply_in_arrival_order(app):
    """Edits joined back to back (each queued before the next is sent) are applied in that order:
    the segment ids they get follow it. A session's requests beyond its share of the queue are
    refused at once with the reason."""
    alice, url = app["alice"], app["url"]
    fn = find_fn(app["demo"], "add_segment")
    cap = app["settings"].max_events_per_session
    S = app["demo"].pixit_registry.get(alice.cookies[COOKIE])
    base, sh = url + "gradio_api", "ordered00001"
    names = []
    with httpx.Client(cookies=alice.cookies, timeout=60) as h:
        for batch in range(3):
            with S.lock:  # the session is busy: everything it sends now waits in its lane
                for i in range(cap):
                    name = f"o{batch}{i:02d}"
                    t = 6.0 + 0.2 * len(names)
                    body = {"data": [t, t + 0.1, name], "fn_index": fn._id, "session_hash": sh}
                    assert h.post(base + "/queue/join", json=body).status_code == 200
                    names.append(name)
                extra = {"data": [1.0, 1.1, "extra"], "fn_index": fn._id, "session_hash": sh}
                refused = h.post(base + "/queue/join", json=extra)
                assert refused.status_code == 429 and "requests waiting or running" in refused.json()["detail"]
            done = 0
            with h.stream("GET", base + "/queue/data", params={"session_hash": sh}) as stream:
                for line in stream.iter_lines():
                    if line.startswith("data:") and '"process_completed"' in line:
                        done += 1
                        if done == cap:
                            break
    added = sorted((s for s in S.doc.segments if s.speaker.startswith("o")), key=lambda s: s.id)
    assert [s.speaker for s in added] == names
    for _ in names:
        alice.predict(api_name="/undo")


def test_retraining_steps_are_capped(app):
    alice = app["alice"]
    alice.predict(0.0, 12.0, api_name="/mark_reviewed")
    cap = app["settings"].max_retrain_steps
    try:
        message = refused(alice.predict("startup", "", 1e-4, cap + 1, 20, api_name="/retrain"))
    except Exception as exc:  # Gradio's own check of the number's maximum, before the handler
        message = str(exc)
    assert re.search(f"between 1 and {cap}|greater than maximum value {cap}", message), message
    S = app["demo"].pixit_registry.get(alice.cookies[COOKIE])
    assert S.ws.versions() == [] and S.busy is None
    alice.predict(api_name="/undo")


def test_one_model_job_per_session_at_a_time(app):
    """A second model job of a session that has one waiting or running is refused at once (the
    single model slot is not a queue one session can fill); another session's is not."""
    from app_fixtures import long_waveform
    import soundfile as sf

    c = Client(app["url"], verbose=False, download_files=False)
    wav = app["tmp"] / "long.wav"
    sf.write(wav, long_waveform(300.0), 16000, subtype="PCM_16")
    c.predict(handle_file(str(wav)), api_name="/upload_meeting")
    first = c.submit("startup", "", "auto", 2, 1, 4, api_name="/run_model")
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (first.status().progress_data or first.done()):
            time.sleep(0.05)
        with pytest.raises(Exception, match="429"):  # gradio_client shows the status; the page shows why
            c.predict("startup", "", "auto", 2, 1, 4, api_name="/run_model")
        res = raw_call(app["url"], c.cookies, c.session_hash, find_fn(app["demo"], "export_tracks"))
        assert res["status"] == 429 and "already waiting or running" in res["output"], res
        other = Client(app["url"], verbose=False, download_files=False)  # another session is not refused
        other.predict(handle_file(str(app["meeting"]["audio"])), api_name="/upload_meeting")
        second = other.submit("startup", "", "auto", 2, 1, 4, api_name="/run_model")
        # it waits for the model worker, and its status line says so in words (not "queue: 1/1")
        waiting = "is waiting for a free worker (another session's model run is using it)"
        deadline = time.time() + 60
        while time.time() < deadline and not any(waiting in str(o[1]) for o in second.outputs()):
            time.sleep(0.05)
        assert any(waiting in str(o[1]) for o in second.outputs()), second.outputs()
    finally:
        c.predict(api_name="/stop")
        first.result()
    assert "found" in second.result()[1]


def test_a_job_says_what_it_waits_for():
    """A model job waiting for the shared worker names what holds it; Stop ends the wait."""
    from app.jobs import Job, Worker
    from core.errors import Cancelled

    worker, release = Worker(), threading.Event()
    retraining = Job(lambda p, st: release.wait(30), threading.Event(), worker, ("alice", "retraining"))
    mine = Job(lambda p, st: "ran", threading.Event(), worker, ("alice", "model run"))
    theirs = Job(lambda p, st: "ran", threading.Event(), worker, ("bob", "model run"))
    deadline = time.time() + 10
    while time.time() < deadline and not (mine.msg.startswith("waiting") and theirs.msg.startswith("waiting")):
        time.sleep(0.01)
    assert retraining.waiting is False and mine.waiting and theirs.waiting
    assert mine.msg == "waiting for another job of this session (retraining) to finish"
    assert theirs.msg == "waiting for a free worker (another session's retraining is using it)"
    theirs.cancel()
    with pytest.raises(Cancelled):
        theirs.outcome()
    release.set()
    assert mine.thread.join(10) is None and mine.outcome() == "ran" and not mine.waiting


def test_uploads_leave_nothing_in_gradios_folder(app):
    """An upload is deleted from Gradio's temporary folder once the app has stored its copy (or
    refused it); the upload widget is cleared, so no link to it stays in the page."""
    c = Client(app["url"], verbose=False, download_files=False)
    path = raw_upload(app["url"], c.cookies, app["meeting"]["audio"])[0]
    assert Path(path).is_file()
    upload = find_fn(app["demo"], "upload_meeting")
    res = raw_call(app["url"], c.cookies, c.session_hash, upload, file_data(path))
    assert res["success"] and res["output"]["data"][-1] is None, res
    assert not Path(path).exists()
    junk = app["tmp"] / "junk.wav"
    junk.write_bytes(b"RIFF....WAVEfmt " + bytes(100))
    path = raw_upload(app["url"], c.cookies, junk)[0]
    res = raw_call(app["url"], c.cookies, c.session_hash, upload, file_data(path))
    assert was_refused(res) and res["output"]["data"][-1] is None, res
    assert not Path(path).exists()


def test_anonymous_calls_keep_memory_bounded(tmp_path):
    """Each anonymous visitor used to leave a workspace folder, a clip folder and a Session in
    memory (200 calls: +200 folders, +40 MB). Now: no folder until something is stored, at most
    `max_sessions` sessions in memory, Gradio's per-tab state bounded too."""
    import gc
    import os

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    settings = Settings(root=tmp_path / "ws", model="default", max_sessions=5)
    with served(settings, tmp_path / "dl") as (demo, url, _):
        refresh = find_fn(demo, "refresh")

        def anonymous(i):
            res = raw_call(url, visit(url), f"anon{i:08d}", refresh)
            assert res["success"], res

        for i in range(10):
            anonymous(i)
        gc.collect()
        before = rss_mb()
        for i in range(80):  # before the fix: +17 MB, 80 folders, 80 sessions
            anonymous(1000 + i)
        gc.collect()
        grown = rss_mb() - before
        assert list((tmp_path / "ws").iterdir()) == []
        assert len(demo.pixit_registry) <= 5
        assert len(demo.server_app.state_holder.session_data) <= 4 * 5
        assert grown < 8, f"RSS grew {grown:.1f} MB for 80 anonymous calls"


def test_with_a_login_nothing_is_served_before_it(tmp_path):
    """`launch(auth=...)` (pixit app --auth-file): Gradio's login guards its routes; the app's own
    file routes ask for the login too, on top of the session cookie."""
    from app_fixtures import free_port
    from app.main import build_demo, launch

    meeting = synthetic_meeting(tmp_path / "data", duration=4.0, num_speakers=1, seed=2)
    demo = build_demo(Settings(root=tmp_path / "ws", model="default"))
    _, url, _ = launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True, auth=[("ann", "pw")])
    try:
        visitor = httpx.get(url)  # the login page (it hands out a session cookie, which opens nothing)
        assert httpx.get(url + "config", cookies=visitor.cookies).status_code == 401
        assert raw_call(url, dict(visitor.cookies), "nologin00001", find_fn(demo, "refresh"))["status"] == 401
        with pytest.raises(Exception):
            Client(url, verbose=False, auth=("ann", "wrong"))
        ann = Client(url, verbose=False, download_files=False, auth=("ann", "pw"))
        ann.predict(handle_file(str(meeting["audio"])), api_name="/upload_meeting")
        clip = url + ann.predict("mixture", api_name="/play")["url"].lstrip("/")
        assert httpx.get(clip, cookies=ann.cookies).status_code == 200
        assert httpx.get(clip, cookies={COOKIE: ann.cookies[COOKIE]}).status_code == 404  # no login cookie
    finally:
        demo.close()
