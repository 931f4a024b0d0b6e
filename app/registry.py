"""The sessions held in memory, by workspace id, with a bound on how many and for how long.

A session (its open meeting, history, arrays) stays in memory while it is used. One unused for
`session_idle_minutes` is dropped: its temporary clips are deleted, its workspace folder stays,
and its owner's next request reopens it from disk (the autosave holds every edit). At most
`max_sessions` are held: past that, the least recently used session that is not in use is
dropped (its owner's next request reopens it), and when every one is in use a new visitor gets
a clear "server is full" message. A session that is running a job or handling a request
(`checkout` ... `release`) is never dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

from app.access import workspace_id
from app.session import Session, Settings
from core.errors import PixitError


class Sessions:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._live: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._used: dict[str, float] = {}
        self._users: dict[str, int] = {}  # requests holding a session (checkout .. release)
        self._lock = threading.Lock()

    def get(self, token: str) -> Session:
        """The session of a cookie token (opened from its workspace folder when not in memory)."""
        with self._lock:
            return self._get(token)

    def checkout(self, token: str) -> Session:
        """`get`, and mark the session in use until `release` (while a request is handled)."""
        with self._lock:
            s = self._get(token)
            self._users[s.sid] = self._users.get(s.sid, 0) + 1
            return s

    def release(self, s: Session) -> None:
        with self._lock:
            n = self._users.get(s.sid, 0) - 1
            if n > 0:
                self._users[s.sid] = n
            else:
                self._users.pop(s.sid, None)
            self._used[s.sid] = self.clock()

    def __len__(self) -> int:
        return len(self._live)

    def sweep(self) -> int:
        """Drop the idle sessions now; returns how many are left."""
        with self._lock:
            self._drop_idle(self.clock())
            return len(self._live)

    # ---------------------------------------------------------------- internals (lock held)
    def _get(self, token: str) -> Session:
        wid = workspace_id(token)
        now = self.clock()
        self._drop_idle(now)
        s = self._live.get(wid)
        if s is None:
            if len(self._live) >= self.settings.max_sessions and not self._evict_one():
                raise PixitError("the server is full (too many sessions in use): try again in a few minutes")
            s = self._live[wid] = Session(self.settings, wid)
        self._live.move_to_end(wid)
        self._used[wid] = now
        return s

    def _in_use(self, wid: str) -> bool:
        s = self._live[wid]
        return self._users.get(wid, 0) > 0 or s.busy is not None or s.lock.busy()

    def _drop(self, wid: str) -> None:
        s = self._live.pop(wid)
        self._used.pop(wid, None)
        s.close()

    def _drop_idle(self, now: float) -> None:
        limit = self.settings.session_idle_minutes * 60.0
        for wid in [w for w, t in self._used.items() if now - t > limit]:
            if not self._in_use(wid):
                self._drop(wid)

    def _evict_one(self) -> bool:
        for wid in self._live:  # least recently used first
            if not self._in_use(wid):
                self._drop(wid)
                return True
        return False
