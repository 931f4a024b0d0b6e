"""The session credential, grants, arrival order, the session registry and safe names, without a
server (the server-level replays are in test_app_isolation.py)."""

import threading
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf

from app_fixtures import synthetic_result
from app import clips, edits, exports, meetings, models, runs
from app.access import (Access, cookie_header, new_token, public_message, safe_filename, unique_filenames,
                        valid_token, workspace_id)
from app.editing import Doc, EditError, check_speaker
from app.lane import GRACE, Lane
from app.registry import Sessions
from app.session import Session, Settings
from app.workspace import Workspace, drop_stale_clips, new_session_id
from core.errors import PixitError


@pytest.fixture
def settings(tmp_path):
    return Settings(root=tmp_path / "ws", max_sessions=3, session_idle_minutes=30)


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "m.wav"
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal(16000 * 10).astype(np.float32), 16000)
    return path


def test_tokens_and_workspace_ids():
    t = new_token()
    assert valid_token(t) and not valid_token(t[:-1]) and not valid_token("../" + t[3:]) and not valid_token(None)
    wid = workspace_id(t)
    assert len(wid) == 32 and wid == workspace_id(t) and wid != workspace_id(new_token()) and t not in wid
    header = cookie_header(t, secure=False).decode()
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    assert "Secure" in cookie_header(t, secure=True).decode()


def test_grants_bindings_and_tickets_are_per_owner_and_bounded(tmp_path):
    access = Access(max_owners=3, files_per_owner=2, max_hashes=4)
    f = tmp_path / "a.wav"
    access.grant("alice", [f])
    assert access.owns("alice", f) and access.owns("alice", str(tmp_path / "." / "a.wav"))
    assert not access.owns("mallory", f) and not access.owns(None, f) and not access.owns("alice", "")
    access.grant("alice", [tmp_path / "b", tmp_path / "c"])  # only the newest 2 are kept
    assert not access.owns("alice", f)
    for i in range(10):
        access.grant(f"o{i}", [f])
    assert access.sizes()["sessions_with_uploads"] == 3
    assert access.bind("h1", "alice") and access.bind("h1", "alice") and not access.bind("h1", "mallory")
    for i in range(10):
        access.bind(f"x{i}", "t")
    assert access.sizes()["session_hashes"] == 4
    assert [access.ticket("alice") for _ in range(3)] == [0, 1, 2] and access.ticket("bob") == 0


def test_an_upload_is_taken_once_by_its_owner_and_deleted(tmp_path):
    access = Access()
    folder = tmp_path / "gradio" / "abc"
    folder.mkdir(parents=True)
    f = folder / "x.wav"
    f.write_bytes(b"data")
    access.grant("alice", [f])
    with pytest.raises(PixitError, match="not uploaded in this session"):
        with access.upload("mallory", f):
            pass
    assert f.exists()
    with pytest.raises(ValueError):
        with access.upload("alice", f) as got:
            assert got == f
            raise ValueError("the handler failed")
    assert not f.exists() and not folder.exists() and not access.owns("alice", f)


def test_public_messages_carry_no_server_path():
    msg = public_message("corrupt.wav: cannot read audio (Error opening '/tmp/gradio/0dd9/corrupt.wav': bad)")
    assert msg == "corrupt.wav: cannot read audio (Error opening 'corrupt.wav': bad)"
    assert public_message("No such file: /home/u/.cache/pixit-workbench/ab12/meetings/m1/audio.wav") == \
        "No such file: audio.wav"
    assert public_message(r"missing C:\Users\u\ws\x.rttm") == "missing x.rttm"
    for keep in ["DER 20/30 %", "10/12 steps", "a/b", "https://example.org/x/y", "start 1.0-2.0 s"]:
        assert public_message(keep) == keep


def test_safe_file_names():
    assert safe_filename("../../x") == "x" and safe_filename("a/b\\c") == "a_b_c"
    assert safe_filename("..") == "file" and safe_filename("") == "file" and safe_filename(".hidden") == "hidden"
    assert safe_filename("Zoë") == "Zoë" and len(safe_filename("x" * 200)) == 64
    names = unique_filenames(["a/b", "a_b", "A_B", "ok"])
    assert names == {"a/b": "a_b", "a_b": "a_b-2", "A_B": "A_B-3", "ok": "ok"}


def test_speaker_names_that_could_name_a_path_or_markup_are_refused():
    for bad in ["../../x", "a\\b", "<img>", "x$y", "q`", "tab\x07"]:
        with pytest.raises(EditError, match="cannot contain"):
            check_speaker(bad)
    assert check_speaker("Zoë-2.ok") == "Zoë-2.ok"


def test_zip_entries_stay_inside_the_archive(settings, wav, tmp_path):
    """A speaker called '../../x' (refused now, but present in an autosave written before) or an
    RTTM label like it never becomes a '../' entry of the exported tracks zip."""
    S = Session(settings, new_session_id())
    meetings.add_audio(S, wav, "m.wav")
    runs.store_result(S, synthetic_result(10.0, 6, 2), "m", "m")
    with pytest.raises(EditError):
        edits.apply(S, "rename", "SPEAKER_00", "../../x")
    evil = tmp_path / "evil.rttm"
    evil.write_text("SPEAKER m 1 0.5 1.0 <NA> <NA> ../../etc/x <NA> <NA>\n")
    with pytest.raises(EditError, match="evil.rttm: a speaker name cannot contain"):
        edits.import_rttm(S, evil)
    legacy = S.doc.to_json()  # an autosave from before the check
    legacy["speakers"] = ["../../x" if s == "SPEAKER_00" else s for s in legacy["speakers"]]
    legacy["segments"] = [[i, a, b, "../../x" if spk == "SPEAKER_00" else spk] for i, a, b, spk in legacy["segments"]]
    legacy["aliases"] = [[m, "../../x" if c == "SPEAKER_00" else c] for m, c in legacy["aliases"]]
    S.history.doc = Doc.from_json(legacy)
    names = zipfile.ZipFile(exports.export_tracks(S)).namelist()
    assert "m/x.wav" in names and "m.rttm" in names
    for name in names:
        assert ".." not in name.split("/") and not name.startswith("/") and "\\" not in name


def test_workspace_folders_appear_only_when_something_is_stored(settings, wav):
    S = Session(settings, new_session_id())
    meetings.summary(S), S.ws.meetings(), models.model_choices(S)
    assert not settings.root.exists() or list(settings.root.iterdir()) == []
    meetings.add_audio(S, wav, "m.wav")
    assert S.ws.path.is_dir()
    clips.clip(S, "mixture", 0, 1)
    assert S.ws.served_file("clip", next(S.ws.clips.iterdir()).name) is not None


def test_clips_left_by_an_earlier_server_run_are_deleted(tmp_path):
    import os

    old, new = Workspace(tmp_path, new_session_id()), Workspace(tmp_path, new_session_id())
    for ws in (old, new):
        ws.clip_path().write_bytes(b"RIFF")
    os.utime(old.clips, (time.time() - 2 * 86400,) * 2)
    drop_stale_clips(tmp_path)
    assert not old.clips.exists() and any(new.clips.iterdir())


def test_served_files_are_plain_names_inside_the_session_folders(tmp_path):
    ws = Workspace(tmp_path, new_session_id())
    (ws.export_dir() / "a.rttm").write_text("x")
    (ws.export_dir() / ".hidden").write_text("x")
    (tmp_path / "secret.txt").write_text("x")
    (ws.export_dir() / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert ws.served_file("export", "a.rttm") == ws.export_dir() / "a.rttm"
    for kind, name in [("export", "../a.rttm"), ("export", ".hidden"), ("export", "link.txt"),
                       ("clip", "a.rttm"), ("model", "a.rttm"), ("export", "nope.rttm")]:
        assert ws.served_file(kind, name) is None, (kind, name)


# ------------------------------------------------------------------ arrival order
def _start(lane, ticket, log):
    def run():
        with lane.turn(ticket):
            log.append(ticket)

    t = threading.Thread(target=run)
    t.start()
    return t


def _wait_waiting(lane, n):
    deadline = time.time() + 5
    while len(lane._waiting) < n and time.time() < deadline:
        time.sleep(0.005)


def test_the_lane_lets_requests_in_by_arrival_number():
    lane, log = Lane(), []
    with lane:  # busy: the requests below queue up, arriving at the lane out of order
        threads = [_start(lane, t, log) for t in (3, 1, 2, 0)]
        _wait_waiting(lane, 4)
    for t in threads:
        t.join(5)
    assert log == [0, 1, 2, 3]


def test_the_lane_waits_briefly_for_an_earlier_request_then_goes_on():
    lane, log = Lane(), []
    with lane.turn(0):
        pass
    t0 = time.monotonic()
    late = _start(lane, 2, log)  # ticket 1 has not arrived yet: 2 waits for it ...
    time.sleep(GRACE / 5)
    _start(lane, 1, log).join(5)
    late.join(5)
    assert log == [1, 2]
    lost = _start(lane, 4, log)  # ... but not for one that never comes (3)
    lost.join(5)
    assert log == [1, 2, 4] and time.monotonic() - t0 < 3 * GRACE + 1
    lane.skip(5)  # a request that takes no turn gives its number back: 6 need not wait
    t = time.monotonic()
    _start(lane, 6, log).join(5)
    assert log[-1] == 6 and time.monotonic() - t < GRACE / 2


def test_the_lane_is_reentrant_and_reports_use():
    lane = Lane()
    assert not lane.busy()
    with lane.turn(0):
        with lane:
            assert lane.busy()
    assert not lane.busy()
    with pytest.raises(RuntimeError):
        lane.release()


# ------------------------------------------------------------------ the registry
def test_idle_sessions_are_freed_and_reopen_from_disk(settings, wav):
    now = [0.0]
    reg = Sessions(settings, clock=lambda: now[0])
    token = new_token()
    S = reg.get(token)
    meetings.add_audio(S, wav, "m.wav")
    edits.apply(S, "add", 1.0, 2.0, "alice")
    clips.clip(S, "mixture", 0, 1)
    now[0] += 29 * 60
    assert reg.sweep() == 1
    now[0] += 2 * 60
    assert reg.sweep() == 0 and S.history is None  # memory freed ...
    assert not S.ws.clips.exists() and S.ws.path.is_dir()  # ... temporary clips deleted, files kept
    again = reg.get(token)
    assert again is not S and [s.speaker for s in again.doc.segments] == ["alice"]


def test_sessions_in_use_are_never_freed(settings):
    now = [0.0]
    reg = Sessions(settings, clock=lambda: now[0])
    busy, held, used = reg.get(new_token()), reg.checkout(new_token()), reg.get(new_token())
    busy.busy = "run"  # a background job
    now[0] += 3600
    with used.lock:  # a request being handled
        assert reg.sweep() == 3
        with pytest.raises(PixitError, match="server is full"):
            reg.get(new_token())
    assert reg.sweep() == 2  # only the one no longer in use went
    reg.release(held)
    busy.busy = None
    reg.get(new_token())
    reg.get(new_token())  # the least recently used free session makes room
    assert len(reg) == 3
