"""Hugging Face Hub stand-ins for tests (no hub is reachable here).

- `write_hub_cache(cache, repo_id, files)` lays files out exactly as huggingface_hub's client writes
  its cache: `models--org--name/blobs/<etag>`, `snapshots/<commit>/<file>` (relative symlinks to the
  blobs) and `refs/<branch>` holding the commit hash. With HF_HUB_OFFLINE=1 and HF_HUB_CACHE
  pointing there, huggingface_hub reads it through the same code path as after a real download.
- `FakeHub` is a local HTTP server that answers the few Hub endpoints huggingface_hub calls for a
  download (HEAD/GET `/<repo>/resolve/<rev>/<file>`) and an upload (`/api/repos/create`,
  `/api/validate-yaml`, `/api/models/<repo>/preupload/<rev>`, `/api/models/<repo>/commit/<rev>`),
  with the status codes and `X-Error-Code` headers the Hub sends for a gated repo, an unknown repo,
  an unknown revision and a missing file. huggingface_hub's own error classification
  (`hf_raise_for_status`) then runs unchanged; what is NOT exercised is the real Hub's behaviour
  beyond these headers (and LFS / Xet transfers: the fake server accepts every file inline).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def commit_hash(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


def _content(value) -> bytes:
    return Path(value).read_bytes() if isinstance(value, Path) else (value.encode() if isinstance(value, str) else value)


def write_hub_cache(cache: Path, repo_id: str, files: dict, commit: str | None = None, ref: str | None = "main") -> Path:
    """Put `files` (name -> bytes, str or a Path to copy) into the hub cache as revision `commit`
    (refs/`ref` points at it); returns the snapshot folder."""
    commit = commit or commit_hash(repo_id + json.dumps(sorted(files)))
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        data = _content(value)
        etag = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / etag).write_bytes(data)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(os.path.relpath(repo / "blobs" / etag, target.parent))
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def hub_env(cache: Path, offline: bool = True, endpoint: str | None = None, token: str | None = None,
            home: Path | None = None) -> dict:
    """Environment for a subprocess (the CLI) that uses `cache` as its Hugging Face cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE", "TRANSFORMERS_OFFLINE"))}
    env.update(HF_HUB_CACHE=str(cache), HF_HOME=str(home or Path(cache).parent / "hf-home"),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_XET="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    if token:
        env["HF_TOKEN"] = token
    return env


def closed_port() -> int:
    """A local port nothing listens on (connections are refused: 'no network')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class FakeRepo:
    files: dict = field(default_factory=dict)  # name -> bytes
    revisions: dict = field(default_factory=dict)  # revision name -> commit hash
    gated: bool = False
    private: bool = False

    def commit(self, revision: str) -> str | None:
        if revision in self.revisions:
            return self.revisions[revision]
        return revision if revision in self.revisions.values() else None


class FakeHub:
    """A local stand-in for huggingface.co (see module docstring). `requests` records every request as
    (method, path, headers with lower-case names, body); `repos` maps repo ids to FakeRepo (uploads create them)."""

    def __init__(self):
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str, dict, bytes]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, status: int, data, headers: dict | None = None):
                self._reply(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

            def _record(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                hub.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                return body

            def _resolve(self, head: bool):
                self._record()
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._reply(404, head=head)
                repo_id, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                repo = hub.repos.get(repo_id)
                authorized = self.headers.get("Authorization", "").startswith("Bearer ")
                if repo is None or (repo.private and not authorized):
                    return self._reply(401 if not authorized else 404, head=head,
                                       headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
                if repo.gated:
                    return self._reply(403 if authorized else 401, head=head, headers={
                        "X-Error-Code": "GatedRepo", "X-Error-Message": "Access to this model is restricted"})
                commit = repo.commit(revision)
                if commit is None:
                    return self._reply(404, head=head, headers={"X-Error-Code": "RevisionNotFound"})
                if name not in repo.files:
                    return self._reply(404, head=head, headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
                data = repo.files[name]
                etag = hashlib.sha256(data).hexdigest()
                return self._reply(200, data, {"X-Repo-Commit": commit, "ETag": f'"{etag}"'}, head=head)

            def do_HEAD(self):
                self._resolve(head=True)

            def do_GET(self):
                self._resolve(head=False)

            def do_POST(self):
                body = self._record()
                path = self.path.split("?")[0]
                if not self.headers.get("Authorization", "").startswith("Bearer "):
                    return self._json(401, {"error": "Invalid username or password."})
                if path == "/api/repos/create":
                    data = json.loads(body)
                    repo_id = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
                    if repo_id in hub.repos:
                        return self._json(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"})
                    hub.repos[repo_id] = FakeRepo(revisions={}, private=data.get("visibility") == "private" or bool(data.get("private")))
                    return self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
                if path == "/api/validate-yaml":
                    return self._json(200, {"errors": [], "warnings": []})
                parts = path.strip("/").split("/")
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
                    repo_id = "/".join(parts[2:4])
                    repo = hub.repos.get(repo_id)
                    if repo is None:
                        return self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    if parts[4] == "preupload":
                        files = json.loads(body)["files"]
                        return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                          for f in files]})
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            repo.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    commit = commit_hash(repo_id + str(len(hub.requests)))
                    repo.revisions["main"] = commit
                    return self._json(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{commit}", "commitOid": commit,
                                            "pullRequestUrl": None})
                return self._json(404, {"error": "not here"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo_id: str, files: dict, revisions: dict | None = None, **flags) -> FakeRepo:
        files = {name: _content(value) for name, value in files.items()}
        self.repos[repo_id] = FakeRepo(files, revisions or {"main": commit_hash(repo_id)}, **flags)
        return self.repos[repo_id]

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
