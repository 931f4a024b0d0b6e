"""The launched app driven through gradio_client: every endpoint's wiring, with a tiny real model
and the real pipeline and training code (module-scoped server: launched once)."""

import json
import logging
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402

from app_fixtures import refused, served, tiny_workbench  # noqa: E402
from app.access import COOKIE  # noqa: E402

# positions of the VIEW outputs (see VIEW_NAMES in app/panels/ui.py)
TIMELINE, STATUS, SUMMARY, SEL_INFO, SEL_START, SEL_END, SEL_SPEAKER, CURSOR = range(8)
TABLE = 12
FAST_TRAINING = {"batch_size": 2, "val_pairs": 2, "chunk_duration": 2.0}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import torch

    torch.set_num_threads(2)
    tmp = tmp_path_factory.mktemp("app")
    meeting, settings = tiny_workbench(tmp, duration=20.0, seed=4, train_overrides=FAST_TRAINING)
    with served(settings, tmp / "dl") as (demo, url, client):
        yield {"demo": demo, "url": url, "client": client, "meeting": meeting, "tmp": tmp, "settings": settings}


def rows(out):
    return out[TABLE]["data"]


def test_endpoints_are_named(app):
    names = set(app["client"].view_api(print_info=False, return_format="dict")["named_endpoints"])
    for name in ["/upload_meeting", "/open_demo", "/run_model", "/stop", "/add_segment", "/move_segment",
                 "/split_segment", "/delete_segment", "/set_speaker", "/rename_speaker", "/merge_speakers",
                 "/undo", "/redo", "/reset", "/mark_reviewed", "/review_view", "/import_rttm", "/export",
                 "/export_tracks", "/retrain", "/play", "/compare", "/select_segment", "/press_key",
                 "/next_unsure", "/zoom_in"]:
        assert name in names, name


def test_bad_uploads_get_a_clear_message(app, caplog, capfd):
    c = app["client"]
    junk = app["tmp"] / "corrupt.wav"
    junk.write_bytes(b"RIFF....WAVEfmt " + bytes(200))
    empty = app["tmp"] / "empty.wav"
    empty.write_bytes(b"")
    capfd.readouterr()
    with caplog.at_level(logging.INFO, logger="pixit.app"):
        assert "corrupt.wav: cannot read audio" in refused(c.predict(handle_file(str(junk)), api_name="/upload_meeting"))
        assert "empty.wav: the file is empty" in refused(c.predict(handle_file(str(empty)), api_name="/upload_meeting"))
    logged = [r for r in caplog.records if r.name == "pixit.app"]
    assert len(logged) == 2 and all(r.exc_info is None for r in logged)  # one line per mistake
    assert "corrupt.wav" in logged[0].getMessage() and "empty.wav" in logged[1].getMessage()
    assert "Traceback" not in capfd.readouterr().err
    text = app["tmp"] / "notes.txt"
    text.write_text("hello")
    with pytest.raises(Exception, match="Invalid file type"):  # Gradio's own check, before the handler
        c.predict(handle_file(str(text)), api_name="/upload_meeting")
    # the app still answers
    out = c.predict(api_name="/refresh")
    assert "No meeting open" in out[SUMMARY]


def test_edit_before_upload_is_refused(app):
    assert "open a meeting first" in refused(app["client"].predict(1.0, 2.0, "A", api_name="/add_segment"))


def test_upload_run_and_progress(app):
    c = app["client"]
    out = c.predict(handle_file(str(app["meeting"]["audio"])), api_name="/upload_meeting")
    assert "Run model" in out[STATUS] and "0:20.0" in out[SUMMARY]
    job = c.submit("startup", "", "fixed", 2, 1, 4, api_name="/run_model")
    seen = set()
    while not job.done():
        st = job.status()
        if st.progress_data:
            seen.add(st.progress_data[0].desc)
        time.sleep(0.1)
    outputs = job.outputs()
    out = outputs[-1]
    assert "found 2 speaker(s)" in out[STATUS], out[STATUS]
    assert len(rows(out)) > 0
    # progress reaches the client as the progress bar (polled: a fast run can slip between polls)
    # and as the intermediate status lines the generator yields
    seen |= {o[STATUS] for o in outputs[:-1] if "%)" in str(o[STATUS])}
    assert seen, "no progress reported"
    fig = out[TIMELINE]
    assert fig["type"] == "plotly" and len(fig["plot"]) < 300_000


def test_select_edit_validation_undo_redo(app):
    c = app["client"]
    out = c.predict(api_name="/refresh")
    first = max(rows(out), key=lambda r: float(r[4]))  # the longest turn: room to resize and split
    assert float(first[4]) > 0.6
    seg_id = int(first[0])
    out = c.predict(seg_id, api_name="/select_segment")
    assert f"#{seg_id}" in out[SEL_INFO]
    player = out[-1]
    assert player["url"].startswith("/pixit/clip/") and player["end"] > player["start"]
    before = rows(c.predict(api_name="/refresh"))
    # end before start: a clear message and nothing changes
    out = c.predict(5.0, 3.0, api_name="/move_segment")
    assert "must be after start" in refused(out) and rows(out) == before and out[TIMELINE]  # still drawn
    assert "past the end" in refused(c.predict(1.0, 25.0, api_name="/move_segment"))
    assert rows(c.predict(api_name="/refresh")) == before
    start, end = float(first[2]), float(first[3])
    new_end = round(min(end, start + 1.0), 3)
    out = c.predict(start, new_end, api_name="/move_segment")
    moved = [r for r in rows(out) if int(r[0]) == seg_id][0]
    assert moved[3] == new_end
    out = c.predict(round(start + 0.5, 3), api_name="/split_segment")
    assert len(rows(out)) == len(before) + 1
    out = c.predict("carol", api_name="/set_speaker")
    assert "carol" in {r[1] for r in rows(out)}
    out = c.predict(api_name="/undo")
    assert "Undid: assign to carol" in out[STATUS]
    out = c.predict(api_name="/undo")
    assert len(rows(out)) == len(before)
    out = c.predict(api_name="/redo")
    assert len(rows(out)) == len(before) + 1
    out = c.predict(api_name="/delete_segment")
    assert len(rows(out)) == len(before)
    out = c.predict(1.0, 1.8, "dave", api_name="/add_segment")
    assert any(r[1] == "dave" for r in rows(out))


def test_shortcut_endpoint_and_speaker_ops(app):
    c = app["client"]
    out = c.predict(api_name="/refresh")
    row = rows(out)[0]
    c.predict(int(row[0]), api_name="/select_segment")
    lane = 2 if row[1] == "SPEAKER_00" else 1  # lanes: SPEAKER_00, SPEAKER_01, dave
    assert "unknown shortcut" in refused(c.predict("1", None, api_name="/press_key"))  # keys send 'speaker1'
    out = c.predict(f"speaker{lane}", None, api_name="/press_key")
    assert f"({lane})" in out[SEL_INFO]
    out = c.predict("undo", None, api_name="/press_key")
    assert "Undid" in out[STATUS]
    out = c.predict("next", None, api_name="/press_key")
    assert out[-1]["url"]
    out = c.predict("SPEAKER_00", "alice", api_name="/rename_speaker")
    assert "alice" in {r[1] for r in rows(out)}
    assert "already exists" in refused(c.predict("alice", "SPEAKER_01", api_name="/rename_speaker"))
    out = c.predict("SPEAKER_01", "alice", api_name="/merge_speakers")
    assert "SPEAKER_01" not in {r[1] for r in rows(out)}
    out = c.predict(api_name="/undo")
    assert "SPEAKER_01" in {r[1] for r in rows(out)}


def test_listen_and_compare(app):
    c = app["client"]
    p = c.predict("mixture", api_name="/play")
    data = httpx.get(app["url"].rstrip("/") + p["url"], cookies=c.cookies).content  # the session's cookie
    assert data[:4] == b"RIFF"
    a, b = c.predict("alice", api_name="/compare")
    assert (a["start"], a["end"]) == (b["start"], b["end"]) and "alice" in b["title"]
    with pytest.raises(Exception, match="added by hand"):
        c.predict("dave", api_name="/play")
    out = c.predict(api_name="/next_unsure")
    assert "Unsure place" in out[STATUS] or out[STATUS]


def test_navigation_answers_with_the_view_it_went_to(app):
    """Each zoom / pan / whole button's answer draws the window after the step, not the one before."""
    c = app["client"]

    def title(out):
        return json.loads(out[TIMELINE]["plot"])["layout"]["title"]["text"]

    assert "view 0:00.0-0:20.0" in title(c.predict(api_name="/whole"))
    assert "view 0:05.0-0:15.0" in title(c.predict(api_name="/zoom_in"))
    assert "view 0:10.0-0:20.0" in title(c.predict(api_name="/pan_right"))
    assert "view 0:00.0-0:20.0" in title(c.predict(api_name="/whole"))


def test_import_malformed_rttm_keeps_edits(app):
    c = app["client"]
    before = rows(c.predict(api_name="/refresh"))
    bad = app["tmp"] / "broken.rttm"
    bad.write_text("SPEAKER meeting 1 0.0 1.0 <NA> <NA> A <NA> <NA>\nSPEAKER meeting 1 x 1.0\n")
    assert "broken.rttm line 2" in refused(c.predict(handle_file(str(bad)), api_name="/import_rttm"))
    assert rows(c.predict(api_name="/refresh")) == before
    out = c.predict(handle_file(str(app["meeting"]["rttm"])), api_name="/import_rttm")
    assert "Imported" in out[STATUS]
    out = c.predict(api_name="/undo")
    assert rows(out) == before


def test_export(app):
    c = app["client"]
    c.predict(0.0, 20.0, api_name="/mark_reviewed")
    files, msg = c.predict(api_name="/export")  # [{name, url, size}]: download with the session's cookie
    assert sorted(f["name"] for f in files) == ["meeting.rttm", "meeting.uem", "meeting_segments.csv"]
    text = {f["name"]: httpx.get(app["url"].rstrip("/") + f["url"], cookies=c.cookies).text for f in files}
    assert text["meeting.rttm"].startswith("SPEAKER meeting 1 ") and "alice" in text["meeting.rttm"]
    assert text["meeting.uem"] == "meeting 1 0.000 20.000\n"
    files, _ = c.predict(api_name="/export_tracks")
    import io
    import zipfile

    data = httpx.get(app["url"].rstrip("/") + files[0]["url"], cookies=c.cookies).content
    assert any(n.endswith("alice.wav") for n in zipfile.ZipFile(io.BytesIO(data)).namelist())


def test_retrain_then_version_is_selectable(app):
    """Retrain makes a version; it becomes current only if core.adoption says it is better, and the
    table shows both models on the held-out part and on the regression set."""
    c = app["client"]
    S = app["demo"].pixit_registry.get(c.cookies[COOKIE])
    job = c.submit("startup", "", 1e-4, 2, 20, api_name="/retrain")
    outs = job.outputs() if job.result() is not None else None
    out = outs[-1]
    note, table = out[-3], out[-2]
    assert "New model version" in note and "held out" in note and "16.0-20.0 s" in note
    rows = table["data"]
    assert [r[1] for r in rows] == ["held-out corrections"] * 2 + ["regression set"] * 2
    assert rows[0][0].startswith("current") and rows[1][0].startswith("new")
    version = S.ws.versions()[-1]
    assert version["adopted"] == ("is now current" in note) == (rows[1][2] < rows[0][2] and rows[3][2] <= rows[2][2] + 1.0)
    model_dd = out[14]
    assert any(f"version:{version['id']}" in str(choice) for choice in model_dd["choices"])  # always selectable
    assert (model_dd.get("value") == f"version:{version['id']}") == version["adopted"]


def test_stop_really_stops_a_run(app):
    from gradio_client import Client

    from app_fixtures import long_waveform

    c = Client(app["url"], verbose=False, download_files=str(app["tmp"] / "dl4"))
    wav = app["tmp"] / "long.wav"
    sf.write(wav, long_waveform(600.0), 16000, subtype="PCM_16")
    c.predict(handle_file(str(wav)), api_name="/upload_meeting")
    job = c.submit("startup", "", "auto", 2, 1, 4, api_name="/run_model")
    deadline = time.time() + 60
    while time.time() < deadline and not job.done():
        st = job.status()
        if st.progress_data and "separated" in (st.progress_data[0].desc or ""):
            break
        time.sleep(0.05)
    c.predict(api_name="/stop")
    t = time.time()
    out = job.outputs()[-1] if job.result() is not None else None
    assert "Stopped" in out[STATUS]
    assert time.time() - t < 15
    assert "Model not run yet" in out[SUMMARY]  # nothing half-stored


def test_two_clients_have_separate_workspaces(app):
    from gradio_client import Client

    other = Client(app["url"], verbose=False, download_files=str(app["tmp"] / "dl2"))
    out = other.predict(api_name="/refresh")
    assert "No meeting open" in out[SUMMARY]
    reg = app["demo"].pixit_registry
    a, b = reg.get(app["client"].cookies[COOKIE]), reg.get(other.cookies[COOKIE])
    assert a is not b and a.ws.path != b.ws.path


def test_retrain_without_corrections_is_refused(app):
    from gradio_client import Client

    other = Client(app["url"], verbose=False, download_files=str(app["tmp"] / "dl3"))
    wav = app["tmp"] / "fresh.flac"
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32), 16000)
    other.predict(handle_file(str(wav)), api_name="/upload_meeting")
    assert "no corrected meeting" in refused(other.predict("startup", "", 1e-4, 2, 20, api_name="/retrain"))


def test_cli_serves_on_localhost_with_a_login(tmp_path, app):
    """`pixit app --auth-file F`: Gradio's login page in front of everything; the password is
    never printed. Bad options are one-line errors."""
    import os
    import subprocess
    import sys

    from app_fixtures import free_port
    from core.cli import main

    assert main(["app", "--port", "70000"]) == 2  # a user mistake: one line, no traceback
    accounts = tmp_path / "accounts.txt"
    accounts.write_text("# who may log in\nann:s3cret-pw\n")
    assert main(["app", "--auth-file", str(tmp_path / "missing.txt")]) == 2
    assert main(["app", "--models", str(tmp_path / "nowhere")]) == 2
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "app", "--port", str(port), "--workspace",
                             str(tmp_path / "ws"), "--model", str(app["settings"].model), "--auth-file", str(accounts)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 150  # a fresh interpreter imports torch + gradio: slow on a busy machine
        while time.time() < deadline:
            try:
                assert httpx.get(url, timeout=2).status_code == 200  # the login page
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        else:
            pytest.fail("pixit app did not start")
        assert httpx.get(url + "config").status_code == 401
        with httpx.Client(base_url=url) as browser:
            assert browser.post("login", data={"username": "ann", "password": "wrong"}).status_code == 400
            assert browser.post("login", data={"username": "ann", "password": "s3cret-pw"}).status_code == 200
            assert browser.get("config").status_code == 200 and b"PixIT Workbench" in browser.get("").content
        import socket

        ip = socket.gethostbyname(socket.gethostname())
        if not ip.startswith("127."):  # not reachable from another interface
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://{ip}:{port}/", timeout=2)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert "s3cret-pw" not in out and "login: 1 account(s)" in out


def test_stop_cancels_retraining(app):
    c = app["client"]
    S = app["demo"].pixit_registry.get(c.cookies[COOKIE])
    n_before = len(S.ws.versions())
    job = c.submit("startup", "", 1e-4, app["settings"].max_retrain_steps, 20, api_name="/retrain")
    deadline = time.time() + 120
    while time.time() < deadline and not job.done():
        st = job.status()
        if st.progress_data:  # the job runs (training checks the stop flag at every step)
            break
        time.sleep(0.1)
    c.predict(api_name="/stop_retrain")
    t = time.time()
    out = job.outputs()[-1] if job.result() is not None else None
    assert time.time() - t < 20
    assert "stopped" in out[-3]
    assert len(S.ws.versions()) == n_before
