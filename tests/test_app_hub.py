"""The app and the Hugging Face Hub, through a launched server and gradio_client: the model list shows
the models of the hub cache, a typed hub id runs (and never reaches a server folder of the same
shape), an unknown one gets the one-line hub error, and a model is shared (pushed with its model
card) to the local Hub stand-in with the server's token."""

from __future__ import annotations

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402

from app_fixtures import refused, served, tiny_model, tiny_workbench  # noqa: E402
from hub_fixtures import FakeHub, write_hub_cache  # noqa: E402

from app.models import startup_choices  # noqa: E402

STATUS = 1  # position of the status line in the app's outputs (see VIEW_NAMES in app/panels/ui.py)


@pytest.fixture
def hub_app(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from core.models import resolve

    cache = tmp_path / "hf-cache"
    meeting, settings = tiny_workbench(tmp_path, duration=8.0, seed=4)
    write_hub_cache(cache, "org/hub-model", {p.name: p for p in (tmp_path / "model").iterdir()})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(resolve, "_HUB_MEMO", {})
    with served(settings, tmp_path / "dl") as (demo, url, client):
        yield {"demo": demo, "client": client, "meeting": meeting, "settings": settings, "tmp": tmp_path}


def test_model_list_shows_the_hub_cache_and_a_typed_hub_id_runs(hub_app, monkeypatch):
    assert ("org/hub-model (Hugging Face cache)", "hub:org/hub-model") in startup_choices(hub_app["settings"])
    dropdown = next(c for c in hub_app["demo"].config["components"] if c.get("props", {}).get("elem_id") == "model_dd")
    assert ("org/hub-model (Hugging Face cache)", "hub:org/hub-model") in map(tuple, dropdown["props"]["choices"])
    c = hub_app["client"]
    c.predict(handle_file(str(hub_app["meeting"]["audio"])), api_name="/upload_meeting")
    # a server folder shaped like the hub id (relative to the server's working folder) is never used
    (hub_app["tmp"] / "org" / "hub-model").mkdir(parents=True)  # not a model: loading it would fail
    tiny_model(hub_app["tmp"] / "org" / "hub-model-local")  # a model, but not on the hub
    monkeypatch.chdir(hub_app["tmp"])
    for choice, typed in (("hub:org/hub-model", ""), ("startup", "org/hub-model")):  # listed, typed
        out = c.predict(choice, typed, "fixed", 2, 1, 4, api_name="/run_model")
        assert "found 2 speaker(s)" in out[STATUS] and "hf-cache" not in out[STATUS], out[STATUS]
    out = c.predict("startup", "org/hub-model-local", "auto", 2, 1, 4, api_name="/run_model")
    assert "org/hub-model-local is not in the Hugging Face cache" in refused(out)


def test_share_pushes_the_selected_model_with_a_card(hub_app, monkeypatch):
    from huggingface_hub import constants

    with FakeHub() as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", "hf_server_token_789")
        message = hub_app["client"].predict("startup", "", "org/shared", True, api_name="/share")
        assert "as **org/shared** on the Hugging Face Hub" in message and "/org/shared/commit/" in message
        repo = hub.repos["org/shared"]
        assert repo.private and {"README.md", "config.json", "model.safetensors"} <= set(repo.files)
        card = repo.files["README.md"].decode()
        assert "shared from the PixIT Workbench app" in card and str(hub_app["tmp"]) not in card
        assert "hf_server_token_789" not in message
        out = hub_app["client"].predict("startup", "", "no spaces allowed", True, api_name="/share")
        assert "not a Hugging Face repo id" in refused(out)
