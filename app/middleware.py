"""The ASGI middleware in front of Gradio's routes (installed by `app.main.launch` as a FastAPI
middleware of the app Gradio builds, innermost, so it sees plain requests and responses).

What it guarantees, request by request:
- the page (`/`) and `/config` set the session cookie when the visitor has none (app/access.py);
- every `/gradio_api/...` request must carry it (401 otherwise);
- a gradio session hash (query `session_hash`, `/heartbeat/<hash>`, `/stream/<hash>/...`, the
  `session_hash` of a JSON body) belongs to the first token that used it (403 for anyone else);
- Gradio's file route (`/gradio_api/file=...`) serves only files granted to the asking session
  (its own uploads); everything else there is 404, whoever knows the path;
- the app's own files (`/pixit/clip/<name>`, `/pixit/export/<name>`) come from the asking
  session's folders only: the URL names a file, never a session or a server path;
- a session may have at most `Limits.events` events queued or running, and at most
  `Limits.jobs` model jobs (run, retrain, track export): further ones are refused (429);
- each admitted event gets its session's next arrival number (`request.state.pixit_ticket`),
  by which the session's Lane lets requests in (app/lane.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from starlette.requests import cookie_parser
from starlette.responses import FileResponse, JSONResponse

from app.access import COOKIE, TICKET, Access, cookie_header, new_token, token_of, valid_token, workspace_id
from app.workspace import Workspace

PAGES = {"/", "/config", "/config/"}
API = "/gradio_api/"
OPEN_API = {"/gradio_api/startup-events"}  # called by Gradio's own launch(), without any cookie
FILE_ROUTE = re.compile(r"^/gradio_api/file[=/](.+)$", re.S)
OWN_FILE = re.compile(r"^/pixit/(clip|export)/([A-Za-z0-9_.\-]{1,128})$")
HASH_IN_PATH = re.compile(r"^/gradio_api/(?:heartbeat|stream)/([^/]+)")  # a session hash (or a stream's event id)
JOINS = re.compile(r"^/gradio_api/(?:queue/join|call/(?:v2/)?([^/]+))/?$")
MAX_BODY = 8 * 1024 * 1024  # JSON bodies (event data) are small; uploads are multipart and not read here
GPU = "gpu"


@dataclass
class Limits:
    events: int = 8  # events of one session queued or running at once
    jobs: int = 1  # model jobs (concurrency_id "gpu") of one session queued or running at once


class SessionMiddleware:
    def __init__(self, app, access: Access, root: str | Path, limits: Limits | None = None):
        self.app = app
        self.access = access
        self.root = Path(root)
        self.limits = limits or Limits()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        root_path = scope.get("root_path") or ""
        if root_path and path.startswith(root_path):
            path = path[len(root_path):] or "/"
        cookies = _cookies(scope)
        token = cookies.get(COOKIE) if valid_token(cookies.get(COOKIE)) else None

        if path in PAGES and scope["method"] in ("GET", "HEAD"):
            if token is None:
                send = _with_cookie(send, new_token(), _is_https(scope))
            return await self.app(scope, receive, send)
        if path.startswith("/pixit/"):
            return await self._own_file(scope, receive, send, path, token, cookies)
        if not path.startswith(API) or path in OPEN_API:
            return await self.app(scope, receive, send)  # the page's static assets, login/logout
        if token is None:
            return await _refuse(scope, receive, send, 401,
                                 "no session: open the app's page (or GET /config) first, and send its cookie")
        m = FILE_ROUTE.match(path)
        if m:
            if self.access.owns(workspace_id(token), m.group(1)) and _logged_in(scope, cookies):
                return await self.app(scope, receive, send)
            return await _refuse(scope, receive, send, 404, "Not found")
        hashes = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", [])
        in_path = HASH_IN_PATH.match(path)
        if in_path:
            hashes.append(in_path.group(1))
        body = b""
        if scope["method"] == "POST" and _is_json(scope):
            body = await _read_body(receive)
            if body is None:
                return await _refuse(scope, receive, send, 413, "request too large")
            receive = _replay(body, receive)
            data = _json(body)
            if isinstance(data.get("session_hash"), str):
                hashes.append(data["session_hash"])
        if not all(self.access.bind(h, token) for h in hashes):
            return await _refuse(scope, receive, send, 403, "this session hash belongs to another session")
        join = JOINS.match(path) if scope["method"] == "POST" else None
        if join:
            reason = self._admit(scope, token, join.group(1), _json(body))
            if reason:
                return await _refuse(scope, receive, send, 429, reason)
            scope.setdefault("state", {})[TICKET] = self.access.ticket(token)
        if path.rstrip("/") == "/gradio_api/upload" and scope["method"] == "POST":
            send = self._granting(send, token)
        return await self.app(scope, receive, send)

    # ---------------------------------------------------------------- pieces
    async def _own_file(self, scope, receive, send, path, token, cookies):
        m = OWN_FILE.match(path)
        if not (m and token and scope["method"] in ("GET", "HEAD") and _logged_in(scope, cookies)):
            return await _refuse(scope, receive, send, 404, "Not found")
        ws = Workspace(self.root, workspace_id(token))
        kind, name = m.groups()
        file = ws.served_file(kind, name)
        if file is None:
            return await _refuse(scope, receive, send, 404, "Not found")
        headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
        if kind == "clip":
            response = FileResponse(file, media_type="audio/wav", headers=headers)
        else:
            response = FileResponse(file, filename=file.name, content_disposition_type="attachment",
                                    media_type="application/octet-stream", headers=headers)
        return await response(scope, receive, send)

    def _admit(self, scope, token: str, api_name: str | None, body: dict) -> str | None:
        """Why a new event of this session is refused (None: admitted). Counts the session's
        events in Gradio's queue (waiting or running), so nothing can leak: a finished or cancelled
        event leaves the queue."""
        app = scope.get("app")
        try:
            blocks = app.get_blocks()
            queue = blocks._queue
            fns = list(blocks.fns.values())
            if api_name:
                fn = next((f for f in fns if f.api_name == api_name), None)
            else:
                fn = blocks.fns.get(int(body.get("fn_index")))
            mine = [e for e in list(queue.event_ids_to_events.values()) if token_of(e.request) == token]
        except (AttributeError, TypeError, ValueError):
            return None  # not a Gradio app or a malformed body: Gradio answers it
        if len(mine) >= self.limits.events:
            return (f"this session already has {len(mine)} requests waiting or running: wait until they finish")
        if fn is not None and fn.concurrency_id == GPU and \
                sum(e.fn.concurrency_id == GPU for e in mine) >= self.limits.jobs:
            return ("a model job of this session (run, retraining or track export) is already waiting or "
                    "running: wait for it, or press Stop")
        return None

    def _granting(self, send, token: str):
        """Wrap `send` so that the paths Gradio answers an upload with are granted to the uploader."""
        state = {"status": 0, "chunks": []}

        async def wrapped(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body" and state["status"] == 200:
                state["chunks"].append(message.get("body", b""))
                if not message.get("more_body", False):
                    paths = _json_value(b"".join(state["chunks"]))
                    if isinstance(paths, list):
                        self.access.grant(workspace_id(token), [p for p in paths if isinstance(p, str)])
            await send(message)

        return wrapped


# ------------------------------------------------------------------ ASGI helpers
def _cookies(scope) -> dict[str, str]:
    """The request's cookies, parsed as Starlette (and so gr.Request) parses them: leniently, so that
    another local app's odd cookie does not hide ours."""
    return cookie_parser(_header(scope, b"cookie"))


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _is_https(scope) -> bool:
    return scope.get("scheme") == "https" or _header(scope, b"x-forwarded-proto").lower() == "https"


def _is_json(scope) -> bool:
    return _header(scope, b"content-type").split(";")[0].strip().lower() == "application/json"


def _with_cookie(send, token: str, secure: bool):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = list(message.get("headers", [])) + [(b"set-cookie", cookie_header(token, secure))]
        await send(message)

    return wrapped


async def _read_body(receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _json_value(raw: bytes):
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def _json(raw: bytes) -> dict:
    value = _json_value(raw)
    return value if isinstance(value, dict) else {}


def _logged_in(scope, cookies: dict[str, str]) -> bool:
    """Gradio's own login (`launch(auth=...)`), checked for the routes Gradio does not guard here."""
    app = scope.get("app")
    if getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None:
        return True
    cid = getattr(app, "cookie_id", "")
    access = cookies.get(f"access-token-{cid}") or cookies.get(f"access-token-unsecure-{cid}")
    return access is not None and access in getattr(app, "tokens", {})


async def _refuse(scope, receive, send, status: int, detail: str):
    return await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
