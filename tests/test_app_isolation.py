"""Session isolation of the launched app, replayed through the real server the way the security
probe did it: gradio_client for the users, raw HTTP (httpx) for what a hand-written client can send.

Alice is the victim (her own client and cookie); Mallory is a second client that knows
everything that can be learnt from outside: Alice's workspace id (read here from the server's
disk: the strongest thing an attacker could know), the URLs Alice was given, the server paths
Gradio hands out."""

import re
import tempfile
from pathlib import Path

import httpx
import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from app_fixtures import (file_data, find_fn, raw_call, raw_upload, served, synthetic_meeting,  # noqa: E402
                          tiny_model, visit)
from app.session import Settings  # noqa: E402

SUMMARY, TABLE = 2, 12
FAST_PIPELINE = {"step": 2.5, "min_embedding_duration": 0.1, "min_cluster_size": 1, "min_duration_on": 0.2,
                 "min_duration_off": 0.3}
GRADIO_TMP = str(Path(tempfile.gettempdir()) / "gradio")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("iso")
    model = tiny_model(tmp / "model")
    meeting = synthetic_meeting(tmp / "data", duration=12.0, num_speakers=2, seed=5)
    settings = Settings(root=tmp / "ws", model=str(model), params=FAST_PIPELINE, max_upload_mb=20)
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
    with pytest.raises(Exception, match="open a meeting first"):
        mallory.predict(5.0, 6.0, "mallory", api_name="/add_segment")
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
    assert not res["success"], res
    assert "No meeting open" in mallory.predict(api_name="/refresh")[SUMMARY]
    # Mallory opens a meeting of her own, then imports Alice's RTTM by its server path
    mallory.predict(handle_file(str(app["meeting"]["audio"])), api_name="/upload_meeting")
    res = raw_call(url, mallory.cookies, mallory.session_hash, find_fn(app["demo"], "import_rttm"), file_data(rttm))
    assert not res["success"], res
    assert rows(mallory.predict(api_name="/refresh")) == []
    # a file of Alice's workspace, named by its path on the server
    wav = next((app["root"] / workspace_with_meetings(app["root"])[0] / "meetings").glob("*/audio.wav"))
    res = raw_call(url, mallory.cookies, mallory.session_hash, upload, file_data(str(wav)))
    assert not res["success"], res


def test_no_server_path_reaches_the_client(app):
    """Breach 4: the workspace root in clip URLs, Gradio's upload folder in upload errors, and a
    model-folder box that told whether any typed path held a model."""
    alice, root = app["alice"], str(app["root"])
    seen = [alice.predict("mixture", api_name="/play")["url"]] + urls_in(alice.predict(api_name="/export"))
    junk = app["tmp"] / "corrupt.wav"
    junk.write_bytes(b"RIFF....WAVEfmt " + bytes(200))
    with pytest.raises(Exception) as err:
        alice.predict(handle_file(str(junk)), api_name="/upload_meeting")
    seen.append(str(err.value))
    assert "corrupt.wav" in str(err.value)
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
        with pytest.raises(Exception) as err:
            alice.predict(choice, typed, "auto", 2, 1, 4, api_name="/run_model")
        answers.append(str(err.value).replace(typed, "<typed>"))
        assert typed not in str(err.value)
    assert answers[0] == answers[1]
