"""Who is asking, and what they may touch: the session credential and the per-session grants.

A browser (or API client) holds exactly one credential: a random 256-bit token in an HttpOnly,
SameSite=Lax cookie that the server sets on the page (or `/config`) response. It is never in a
URL, a page's config, a log line or the browser's storage. The workspace folder is named by a
one-way hash of it, so knowing a folder name (or anything derived from it) gives nobody the
workspace. `app/middleware.py` checks the cookie on every request; handlers only ever find their
Session from it (`token_of(request)`), never from a value the client sends.

No gradio import here: this is plain bookkeeping, tested directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import os
import re
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

from core.errors import PixitError

COOKIE = "pixit_session"
TICKET = "pixit_ticket"  # request.state field: the request's place in its session's order (app/lane.py)
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie: a reload or a restart restores the work


def new_token() -> str:
    return secrets.token_urlsafe(32)


def valid_token(token) -> bool:
    return isinstance(token, str) and bool(TOKEN_RE.match(token))


def workspace_id(token: str) -> str:
    """The workspace folder of a token (32 hex characters); the token cannot be recovered from it."""
    return hashlib.sha256(b"pixit-workspace\0" + token.encode("ascii")).hexdigest()[:32]


def token_of(request) -> str | None:
    """The session token of a request (a gr.Request or a Starlette request), None if it has none."""
    try:
        token = request.cookies.get(COOKIE)
    except AttributeError:
        return None
    return token if valid_token(token) else None


def ticket_of(request) -> int | None:
    """The arrival number the middleware gave a request (None when it gave none)."""
    return getattr(getattr(request, "state", None), TICKET, None)


def cookie_header(token: str, secure: bool) -> bytes:
    """The Set-Cookie value: HttpOnly (no script reads it), SameSite=Lax (no other site's form or
    fetch sends it; a link to the app still does), Secure behind https."""
    parts = [f"{COOKIE}={token}", "Path=/", f"Max-Age={COOKIE_MAX_AGE}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


class _Bounded:
    """An LRU dict that forgets its oldest entries past `size` (memory stays bounded whatever
    clients send)."""

    def __init__(self, size: int):
        self.size = size
        self.data: OrderedDict = OrderedDict()

    def get(self, key, default=None):
        if key in self.data:
            self.data.move_to_end(key)
            return self.data[key]
        return default

    def put(self, key, value) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)

    def pop(self, key) -> None:
        self.data.pop(key, None)

    def __len__(self) -> int:
        return len(self.data)


class Access:
    """Server-side bookkeeping shared by the middleware and the handlers.

    - grants: the files Gradio stored for a session (its uploads), by workspace id, so that a path
      another session learnt is neither downloadable nor accepted as an input;
    - bindings: each gradio session hash belongs to the token that first used it, so knowing
      someone's session hash (it travels in URLs) does not let you read their event stream;
    - tickets: each session's requests numbered in arrival order (app/lane.py).
    """

    def __init__(self, max_owners: int = 5000, files_per_owner: int = 64, max_hashes: int = 20000):
        self._lock = threading.Lock()
        self._grants = _Bounded(max_owners)
        self._hashes = _Bounded(max_hashes)
        self._tickets = _Bounded(max_owners)
        self.files_per_owner = files_per_owner

    # ---- files Gradio stored for a session
    def grant(self, owner: str, paths) -> None:
        with self._lock:
            mine = self._grants.get(owner) or _Bounded(self.files_per_owner)
            for p in paths:
                mine.put(_norm(p), True)
            self._grants.put(owner, mine)

    def owns(self, owner: str | None, path) -> bool:
        if not owner or not path:
            return False
        with self._lock:
            mine = self._grants.get(owner)
            return mine is not None and mine.get(_norm(path), False)

    def revoke(self, owner: str, path) -> None:
        with self._lock:
            mine = self._grants.get(owner)
            if mine is not None:
                mine.pop(_norm(path))

    @contextlib.contextmanager
    def upload(self, owner: str, path) -> Iterator[Path]:
        """An uploaded file handed to a handler: accepted only when `owner` uploaded it (so a
        server path another session learnt is no input), and deleted from Gradio's temporary
        folder afterwards, whatever happened (the app keeps its own copy where it needs one)."""
        if not path:
            raise PixitError("no file received")
        if not self.owns(owner, path):
            raise PixitError("that file was not uploaded in this session: upload it again")
        try:
            yield Path(path)
        finally:
            self.revoke(owner, path)
            remove_upload(Path(path))

    # ---- gradio session hashes
    def bind(self, session_hash: str, token: str) -> bool:
        """True if `session_hash` is (now) this token's; False if another token uses it."""
        with self._lock:
            owner = self._hashes.get(session_hash)
            if owner is None:
                self._hashes.put(session_hash, token)
                return True
            return owner == token

    # ---- arrival order of a session's requests
    def ticket(self, token: str) -> int:
        with self._lock:
            n = self._tickets.get(token, 0)
            self._tickets.put(token, n + 1)
            return n

    def sizes(self) -> dict[str, int]:
        """How much is remembered (for the load test)."""
        with self._lock:
            return {"sessions_with_uploads": len(self._grants), "session_hashes": len(self._hashes),
                    "ticket_counters": len(self._tickets)}


def _norm(path) -> str:
    return os.path.realpath(str(path))


def remove_upload(path: Path) -> None:
    """Delete an uploaded file and the per-upload folder Gradio made for it, if now empty."""
    try:
        path.unlink()
        path.parent.rmdir()
    except OSError:
        pass


# ------------------------------------------------------------------ what reaches the client
_ABS_POSIX = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"()<>,;]+/)+([^\s/'\"()<>,;]*)")
_ABS_WINDOWS = re.compile(r"\b[A-Za-z]:\\(?:[^\s\\'\"()<>,;]+\\)+([^\s\\'\"()<>,;]*)")


def public_message(text: str) -> str:
    """A message with every absolute server path reduced to its last part (a file name).

    Applied to everything the handlers report (errors included), so that an exception text that
    happens to carry a path (a library's, the workspace's, Gradio's temp folder) does not reach
    the user."""
    text = _ABS_POSIX.sub(lambda m: m.group(1) or "…", str(text))
    return _ABS_WINDOWS.sub(lambda m: m.group(1) or "…", text)


def html_text(text: str) -> str:
    """Text for an HTML template (the players): escaped, and with no `$` or backquote, because
    gradio evaluates gr.HTML templates as JavaScript template strings."""
    return html.escape(str(text), quote=True).replace("$", "&#36;").replace("`", "&#96;")


def safe_filename(name: str, fallback: str = "file") -> str:
    """A user string (a speaker name, a meeting name) reduced to a single safe path component:
    letters, digits, '.', '-', '_' only, no leading dot, at most 64 characters."""
    parts = [p for p in re.split(r"[\\/]+", str(name or "")) if p not in ("", ".", "..")]
    base = re.sub(r"[^\w.\-]+", "_", "_".join(parts)).lstrip(".")[:64]
    return base if base.strip("_.-") else fallback


def unique_filenames(names) -> dict[str, str]:
    """safe_filename for each name, with '-2', '-3' added where two names reduce to the same one."""
    out, used = {}, set()
    for name in names:
        base = safe_filename(name)
        cand, k = base, 2
        while cand.lower() in used:
            cand, k = f"{base}-{k}", k + 1
        used.add(cand.lower())
        out[name] = cand
    return out


def is_within(path: Path, folder: Path) -> bool:
    """`path` (resolved) is inside `folder` (resolved)."""
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
        return True
    except ValueError:
        return False
