"""The Hugging Face Hub, the way transformers and pyannote.audio use it: names, downloads, the cache.

Everything here goes through `huggingface_hub` itself, so its rules hold unchanged: the cache
(`HF_HUB_CACHE`, `HF_HOME`), offline mode (`HF_HUB_OFFLINE=1`: only the cache is read), the endpoint
(`HF_ENDPOINT`) and the token (`HF_TOKEN`, else the login stored by `hf auth login`). No function
takes a token: one typed on a command line lands in the shell history, one typed in the app in its
logs.

- `parse_hub_id("org/name@rev") -> ("org/name", "rev")`, None for anything that is not a hub id;
- `download(repo_id, filename, revision)` -> local path in the cache, or a one-line `HubError` that
  names the repo and says what to do (gated: accept the conditions at its page; unknown or private:
  check the name or log in; no network / offline with an empty cache: put the files in the cache);
  `download_optional` returns None for a file the repo does not have;
- `hub_error(exc, repo_id)` is that mapping, for the loaders of other libraries (transformers,
  speechbrain) whose errors wrap huggingface_hub's;
- `cached_repos()` lists the model repos of the local cache (what the app offers without network);
- `upload_folder(folder, repo_id, private)` creates the repo if needed and commits the folder.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import HubError

__all__ = ["parse_hub_id", "download", "download_optional", "hub_error", "cached_repos", "CachedRepo",
           "upload_folder", "repo_url", "is_offline", "cache_dir", "translated_errors"]

_REPO_PART = r"[A-Za-z0-9][\w.-]{0,95}"
_HUB_ID = re.compile(rf"^({_REPO_PART}/{_REPO_PART})(?:@([\w./-]{{1,200}}))?$")


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """("org/name", revision or None) for "org/name" or "org/name@revision"; None when `text` is not
    shaped like a hub id (a local path with more parts, a file name, ...)."""
    m = _HUB_ID.match(str(text).strip())
    if not m or ".." in m.group(1) or "--" in m.group(1) or m.group(1).endswith((".", "-")):
        return None
    return m.group(1), m.group(2)


def repo_url(repo_id: str) -> str:
    """The repo's page (where a gated repo's conditions are accepted)."""
    from huggingface_hub import constants

    return f"{constants.ENDPOINT.rstrip('/')}/{repo_id}"


def is_offline() -> bool:
    """HF_HUB_OFFLINE (read by huggingface_hub when it was imported)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def cache_dir() -> str:
    """The hub cache folder huggingface_hub uses (HF_HUB_CACHE, else HF_HOME/hub)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _name(repo_id: str, revision: str | None) -> str:
    return f"{repo_id}@{revision}" if revision else repo_id


def _chain(exc: BaseException):
    """`exc` and the exceptions it was raised from (transformers and speechbrain wrap the hub's)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def hub_error(exc: BaseException, repo_id: str, revision: str | None = None, filename: str | None = None) -> HubError | None:
    """The one-line HubError for a huggingface_hub failure anywhere in `exc`'s chain, None if there is none."""
    from huggingface_hub import errors

    name = _name(repo_id, revision)
    login = "log in with `hf auth login` (or set HF_TOKEN)"
    for e in _chain(exc):
        if isinstance(e, errors.GatedRepoError):
            return HubError(f"{repo_id} is a gated repo and your account has no access to it yet: accept its conditions "
                            f"at {repo_url(repo_id)} and {login} with that account")
        if isinstance(e, errors.RevisionNotFoundError):
            return HubError(f"{repo_id} has no revision {revision!r}: check the branch, tag or commit after '@'")
        if isinstance(e, errors.RepositoryNotFoundError):
            return HubError(f"no model repo {repo_id} on the Hugging Face Hub, or it is private: check the name, "
                            f"or {login} with an account that can read it")
        if isinstance(e, (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled)):
            if is_offline():
                return HubError(f"{name} is not in the Hugging Face cache ({cache_dir()}) and HF_HUB_OFFLINE is set: "
                                f"download it once with network (`hf download {repo_id}`) or put its files in the cache")
            return HubError(f"cannot reach the Hugging Face Hub to fetch {name}, and it is not in the cache "
                            f"({cache_dir()}): check the network or proxy, or put its files in the cache and set HF_HUB_OFFLINE=1")
        if isinstance(e, errors.EntryNotFoundError):
            return HubError(f"{name} has no file {filename or '(requested file)'}")
        if isinstance(e, errors.HFValidationError):
            return HubError(f"{repo_id!r} is not a valid Hugging Face repo id (expected org/name[@revision])")
        if isinstance(e, errors.HfHubHTTPError):
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status == 401:
                return HubError(f"the Hugging Face Hub did not accept your credentials for {repo_id}: {login}")
            if status == 403:
                return HubError(f"your Hugging Face account may not do this on {repo_id} (HTTP 403): use a token with "
                                "write access to that namespace")
            first = (str(e).strip().splitlines() or ["HTTP error"])[0]
            return HubError(f"the Hugging Face Hub failed for {name}: {first[:200]}")
        if "ConnectError" in type(e).__name__ or "Timeout" in type(e).__name__:  # httpx, when nothing was cached
            return HubError(f"cannot reach the Hugging Face Hub for {name}: check the network or proxy")
    return None


def _fetch(repo_id: str, filename: str, revision: str | None) -> Path:
    """hf_hub_download, without its retry warnings (one line per failure is what the user gets)."""
    from huggingface_hub import hf_hub_download

    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, library_name="pixit-workbench"))
    finally:
        logger.setLevel(level)


@contextmanager
def translated_errors(repo_id: str, revision: str | None = None, filename: str | None = None):
    """Turn a huggingface_hub failure raised inside the block (also wrapped by transformers or
    speechbrain) into its one-line HubError; anything else passes unchanged."""
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        mapped = hub_error(exc, repo_id, revision, filename)
        if mapped is None:
            raise
        raise mapped from None


def download(repo_id: str, filename: str, revision: str | None = None) -> Path:
    """The local path of `filename` of `repo_id` (downloaded into the cache when needed)."""
    with translated_errors(repo_id, revision, filename):
        return _fetch(repo_id, filename, revision)


def download_optional(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """Like `download`, but None when the repo has no such file: the Hub says so, or (offline or
    unreachable) the repo's snapshot is in the cache without it."""
    from huggingface_hub import errors

    with translated_errors(repo_id, revision, filename):
        try:
            return _fetch(repo_id, filename, revision)
        except errors.LocalEntryNotFoundError:
            if _snapshot_cached(repo_id, revision):
                return None
            raise
        except errors.EntryNotFoundError:  # the Hub answered: the repo has no such file
            return None


def _repo_folder(repo_id: str) -> Path:
    return Path(cache_dir()) / ("models--" + repo_id.replace("/", "--"))


def _snapshot_cached(repo_id: str, revision: str | None) -> bool:
    folder = _repo_folder(repo_id)
    revision = revision or "main"
    ref = folder / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    return (folder / "snapshots" / commit).is_dir()


@dataclass(frozen=True)
class CachedRepo:
    """A model repo found in the local Hugging Face cache (newest revision first in `cached_repos`)."""

    repo_id: str
    revision: str  # commit hash
    refs: tuple[str, ...]
    snapshot: Path


def cached_repos() -> list[CachedRepo]:
    """The model repos of the cache (HF_HUB_CACHE), one entry per repo: its newest snapshot."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir())  # the folder hf_hub_download uses (read when called)
    except (CacheNotFound, OSError):
        return []
    repos = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        newest = max(repo.revisions, key=lambda r: ("main" in r.refs, r.last_modified))
        repos.append(CachedRepo(repo.repo_id, newest.commit_hash, tuple(sorted(newest.refs)), Path(newest.snapshot_path)))
    return repos


def upload_folder(folder: str | Path, repo_id: str, private: bool = False, commit_message: str = "Upload model") -> str:
    """Create `repo_id` (model repo; `private` applies only when it is new) and commit every file of
    `folder` to it; returns the commit URL. The token is huggingface_hub's (HF_TOKEN or the stored login)."""
    from huggingface_hub import HfApi

    if is_offline():
        raise HubError(f"cannot push to {repo_id}: HF_HUB_OFFLINE is set (pushing needs the network)")
    api = HfApi(library_name="pixit-workbench")
    with translated_errors(repo_id):
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder), commit_message=commit_message)
    return str(info.commit_url)
