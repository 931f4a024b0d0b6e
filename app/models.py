"""Which models a session may name (the model list and box, no gradio): the startup model, the
session's own retrained versions, the model subfolders of the server's `--models` folders by folder
name only (so the model box is no probe of the server's disk), and Hugging Face Hub models; and
sharing one on the Hub."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ModelError
from core.hub import parse_hub_id

if TYPE_CHECKING:
    from app.session import Session, Settings


def served_models(settings: Settings) -> list[Path]:
    """The model folders (holding config.json) directly inside the server's --models folders."""
    out = []
    for d in settings.model_dirs or ():
        d = Path(d)
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if (p / "config.json").is_file())
    return out


def served_model(settings: Settings, name: str) -> Path | None:
    """The served model folder called `name` (a plain folder name), or None."""
    if not re.match(r"^[\w.\-]{1,100}$", name or "") or name.startswith("."):
        return None
    return next((p for p in served_models(settings) if p.name == name), None)


def hub_model(hub_id: str) -> tuple[str, str]:
    """(local snapshot or checkpoint, hub id) of a Hugging Face Hub model, fetched into the server's
    hub cache with the server's login; only ever a hub id, never a server path of the same shape."""
    from core.models import resolve_model

    source = resolve_model(hub_id, hub_only=True)
    return str(source.path), source.label


def default_model_available(model: str) -> bool:
    try:
        from core.models import resolve_model

        return resolve_model(model) is not None
    except Exception:
        return False


def startup_choices(settings: Settings) -> list[tuple[str, str]]:
    """The model list before a session is known. Values are names, never server paths."""
    model = settings.model or "default"
    shown = "default (shipped)" if model == "default" else f"startup model ({Path(model).name})"
    from core.models.resolve import cached_models

    return ([(shown, "startup")] + [(f"{p.name} (server models)", f"models:{p.name}") for p in served_models(settings)]
            + [(f"{m.name} (Hugging Face cache)", f"hub:{m.name}") for m in cached_models()])


def model_choices(S: Session) -> list[tuple[str, str]]:
    """The model list of a session: the startup list plus its retrained versions."""
    choices = startup_choices(S.settings)
    for v in S.ws.versions():
        choices.append((f"{v['id']} (retrained {time.strftime('%H:%M', time.localtime(v['created']))})", f"version:{v['id']}"))
    return choices


def choice_of_run(S: Session) -> str | None:
    """The model-list choice whose model made the open meeting's output (a restored session shows the
    model its output came from, not the list's default); None without a run or when it is not listed."""
    if S.run is None:
        return None
    model, label = str(S.run.info.get("model", "")), str(S.run.info.get("model_label", ""))
    for v in S.ws.versions():
        if str(v["path"]) == model:
            return f"version:{v['id']}"
    if model == str(S.settings.model or "default"):
        return "startup"
    for p in served_models(S.settings):
        if str(p) == model:
            return f"models:{p.name}"
    listed = {value for _, value in startup_choices(S.settings)}
    return f"hub:{label}" if f"hub:{label}" in listed else None


def resolve_model(S: Session, choice: str | None, typed: str | None = None) -> tuple[str, str]:
    """(model folder or name, human label) for a dropdown choice, or for a model folder typed
    by name. Only the startup model, this session's versions and the folders of the server's
    --models directories can be named: a typed server path is refused in the same words
    whether or not it exists (the box is no probe of the server's disk)."""
    settings = S.settings
    if typed and str(typed).strip():
        found = served_model(settings, str(typed).strip())
        if found is None and parse_hub_id(str(typed).strip()) is not None:
            return hub_model(str(typed).strip())
        if found is None:
            raise ModelError("not one of this server's model folders: pick a model in the list, or type the "
                             "name of a folder the server offers (pixit app --models DIR) or a Hugging Face "
                             "Hub id (org/name[@revision])")
        return str(found), found.name
    choice = str(choice or "startup")
    if choice == "startup":
        model = settings.model or "default"
        return model, "default" if model == "default" else Path(model).name
    if choice.startswith("version:"):
        v = S.ws.version(choice.split(":", 1)[1])
        return v["path"], v["id"]
    if choice.startswith("models:") and (found := served_model(settings, choice[7:])) is not None:
        return str(found), found.name
    if choice.startswith("hub:"):
        return hub_model(choice[4:])
    raise ModelError("unknown model choice: pick one in the list")


def share(S: Session, model: str, model_label: str, repo_id: str, private: bool) -> str:
    """Push `model` (a version, usually) to the Hub with a generated model card, as `pixit push` does;
    the token is the server's (HF_TOKEN or its stored login), never typed in the app."""
    from core.models.sharing import push_model

    parent = next((v.get("parent") for v in S.ws.versions() if v["id"] == model_label), None)
    url = push_model(model, str(repo_id or "").strip(), private=bool(private), parent=parent,
                     notes=[f"shared from the PixIT Workbench app (model {model_label})"])
    S.message = f"Shared **{model_label}** as **{repo_id}** on the Hugging Face Hub: {url}"
    return S.message
