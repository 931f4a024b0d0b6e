"""Where a model name leads: the ONE place every entry point resolves models (`load_model`, the CLI
commands, the app, the notebooks, `PipelineParams.for_model`, `copy_tuned_params`).

A model is named by
- `default`: the shipped model, `assets/models/default`;
- a local path: a model folder (`config.json` + `model.safetensors` [+ `params.json`]), a pyannote.audio
  ToTaToNet checkpoint file (`.ckpt`, `.bin`) or a folder holding one as `pytorch_model.bin` (what
  `pixit export --format pyannote` writes);
- a Hugging Face Hub id `org/name` or `org/name@revision` (any path that exists locally wins):
  fetched through `core.hub` (cache, HF_HUB_OFFLINE, HF_TOKEN as huggingface_hub has them). A repo
  in this project's format holds `config.json` + `model.safetensors` (+ `params.json`, the pipeline
  settings tuned for it), as transformers reads its own; otherwise the repo's `pytorch_model.bin` is
  a pyannote ToTaToNet checkpoint, as pyannote.audio's `Model.from_pretrained` reads it
  (`pyannote/separation-ami-1.0`). Only the files named here are downloaded.

`resolve_model(name) -> ModelSource` says what and where; `load_model(name)` builds the ToTaToNet
(pyannote checkpoints are converted on load, see pyannote_compat.py).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelError
from core.models.totatonet import CONFIG_NAME, FORMAT_NAME, WEIGHTS_NAME, ToTaToNet, load_folder

__all__ = ["ModelSource", "resolve_model", "resolve_model_path", "load_model", "cached_models", "PARAMS_NAME", "PYANNOTE_WEIGHTS_NAME",
           "CHECKPOINT_SUFFIXES"]

PARAMS_NAME = "params.json"  # pipeline parameters tuned for a model, kept in its folder
PYANNOTE_WEIGHTS_NAME = "pytorch_model.bin"  # pyannote.audio's name for a model checkpoint
CHECKPOINT_SUFFIXES = (".ckpt", ".bin")
KINDS = ("pixit", "pyannote")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: `path` is a model folder (kind "pixit") or a checkpoint file ("pyannote")."""

    name: str
    kind: str
    path: Path
    repo_id: str | None = None
    revision: str | None = None

    @property
    def params_path(self) -> Path | None:
        """The model's tuned pipeline parameters (params.json next to it), None when it has none."""
        folder = self.path if self.kind == "pixit" else self.path.parent
        candidate = folder / PARAMS_NAME
        return candidate if candidate.is_file() else None

    @property
    def label(self) -> str:
        """Short name for messages and lists."""
        if self.repo_id:
            return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id
        return self.name


def shipped_model_dir(name: str = "default") -> Path:
    """Folder of a model shipped in assets/models/."""
    import core

    return Path(core.__file__).resolve().parent.parent / "assets" / "models" / name


def _is_pixit_config(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == FORMAT_NAME  # a transformers config is not one
    except (OSError, ValueError, AttributeError):
        return False


def _local(name: str, path: Path) -> ModelSource:
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return ModelSource(name, "pyannote", path)
    if path.is_dir():
        if (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file():
            return ModelSource(name, "pixit", path)
        if (path / PYANNOTE_WEIGHTS_NAME).is_file() and not (path / CONFIG_NAME).is_file():
            return ModelSource(name, "pyannote", path / PYANNOTE_WEIGHTS_NAME)
    raise ModelError(f"{path} is not a model folder: expected {CONFIG_NAME} and {WEIGHTS_NAME} "
                     f"(or a pyannote {PYANNOTE_WEIGHTS_NAME} / .ckpt checkpoint)")


_HUB_MEMO: dict[tuple, ModelSource] = {}


def _from_hub(name: str, repo_id: str, revision: str | None) -> ModelSource:
    from core import hub

    key = (repo_id, revision, hub.cache_dir(), hub.is_offline())
    known = _HUB_MEMO.get(key)
    if known is not None and known.path.exists():  # one look-up per process (a pipeline asks twice)
        return known
    config = hub.download_optional(repo_id, CONFIG_NAME, revision)
    if config is not None and _is_pixit_config(config):
        weights = hub.download(repo_id, WEIGHTS_NAME, revision)
        hub.download_optional(repo_id, PARAMS_NAME, revision)
        source = ModelSource(name, "pixit", weights.parent, repo_id, revision)
    else:
        checkpoint = hub.download_optional(repo_id, PYANNOTE_WEIGHTS_NAME, revision)
        if checkpoint is None:
            label = f"{repo_id}@{revision}" if revision else repo_id
            raise ModelError(f"{label} holds no model this program reads: expected {CONFIG_NAME} + {WEIGHTS_NAME} "
                             f"(PixIT Workbench) or {PYANNOTE_WEIGHTS_NAME} (a pyannote.audio ToTaToNet)")
        source = ModelSource(name, "pyannote", checkpoint, repo_id, revision)
    _HUB_MEMO[key] = source
    return source


def resolve_model(model: str | Path, hub_only: bool = False) -> ModelSource:
    """What `model` names (see module docstring); a one-line ModelError / HubError otherwise.
    `hub_only`: `model` must be a hub id and no local path is looked at (the app: a user must not
    reach the server's folders by typing a relative path of the same shape)."""
    from core.hub import parse_hub_id

    name = str(model)
    if hub_only:
        hub_id = parse_hub_id(name)
        if hub_id is None:
            raise ModelError(f"{name!r} is not a Hugging Face Hub id (org/name[@revision])")
        return _from_hub(name, *hub_id)
    if isinstance(model, str) and model == "default":
        return _local(name, shipped_model_dir())
    path = Path(model).expanduser()
    if path.exists() or isinstance(model, Path):
        return _local(name, path)
    hub_id = parse_hub_id(name)
    if hub_id is not None:
        return _from_hub(name, *hub_id)
    raise ModelError(f"{path} is not a model folder: no such file or folder (a model is a folder with {CONFIG_NAME} + "
                     f"{WEIGHTS_NAME}, 'default', a pyannote checkpoint, or a hub id org/name[@revision])")


def _names_totatonet(checkpoint: Path) -> bool:
    """Whether a torch.save archive's pickle names the ToTaToNet class, read as bytes (nothing unpickled)."""
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            pickle_name = next(n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            return b"ToTaToNet" in archive.read(pickle_name)
    except (OSError, zipfile.BadZipFile, StopIteration):
        return False


def cached_models() -> list[ModelSource]:
    """The models of the local Hugging Face cache that load here (this project's format, or a pyannote
    ToTaToNet), one per repo (its newest snapshot); `name` is what to pass as `--model`."""
    from core.hub import cached_repos

    found = []
    for repo in cached_repos():
        name = repo.repo_id if "main" in repo.refs else f"{repo.repo_id}@{repo.revision}"
        revision = None if "main" in repo.refs else repo.revision
        snapshot = repo.snapshot
        if (snapshot / WEIGHTS_NAME).is_file() and _is_pixit_config(snapshot / CONFIG_NAME):
            found.append(ModelSource(name, "pixit", snapshot, repo.repo_id, revision))
        elif (snapshot / PYANNOTE_WEIGHTS_NAME).is_file() and _names_totatonet(snapshot / PYANNOTE_WEIGHTS_NAME):
            found.append(ModelSource(name, "pyannote", snapshot / PYANNOTE_WEIGHTS_NAME, repo.repo_id, revision))
    return found


def resolve_model_path(model: str | Path) -> Path:
    """The local model folder or checkpoint file `model` names (downloaded first for a hub id)."""
    return resolve_model(model).path


def load_model(model: str | Path, device: str = "cpu") -> ToTaToNet:
    """A ToTaToNet in eval mode from anything `resolve_model` accepts ('auto' device: the GPU when there is one)."""
    source = resolve_model(model)
    if source.kind == "pyannote":
        from core.models.pyannote_compat import convert_checkpoint

        net = convert_checkpoint(source.path)
    else:
        net = load_folder(source.path)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return net.to(device).eval()
