"""The sessions held in memory, by workspace id, with a bound on how many and for how long.

A session (its open meeting, history, arrays) stays in memory while it is used. One unused for
`idle_minutes` is dropped: its temporary clips are deleted, its workspace folder stays, and its
owner's next request reopens it from disk (the autosave holds every edit). At most
`max_sessions` are held; when that many are in use, a new visitor gets a clear "server is full"
message instead of pushing someone else's work out of memory. A session that is running a job
or handling a request is never dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

from app.access import workspace_id
from app.session import Session, Settings
from core.errors import PixitError

MIN_IDLE_TO_EVICT = 60.0  # seconds: a session used more recently than this is never pushed out


class Sessions:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._live: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Session:
        """The session of a cookie token (opened from its workspace folder when not in memory)."""
        wid = workspace_id(token)
        with self._lock:
            now = self.clock()
            self._drop_idle(now)
            s = self._live.get(wid)
            if s is None:
                if len(self._live) >= self.settings.max_sessions and not self._evict_one(now):
                    raise PixitError("the server is full (too many sessions in use): try again in a few minutes")
                s = self._live[wid] = Session(self.settings, wid)
            self._live.move_to_end(wid)
            self._used[wid] = now
            return s

    def __len__(self) -> int:
        return len(self._live)

    def sweep(self) -> int:
        """Drop the idle sessions now; returns how many are left."""
        with self._lock:
            self._drop_idle(self.clock())
            return len(self._live)

    # ---------------------------------------------------------------- internals (lock held)
    def _in_use(self, s: Session) -> bool:
        return s.busy is not None or s.lock.busy()

    def _drop(self, wid: str) -> None:
        s = self._live.pop(wid)
        self._used.pop(wid, None)
        s.close()

    def _drop_idle(self, now: float) -> None:
        limit = self.settings.session_idle_minutes * 60.0
        for wid in [w for w, t in self._used.items() if now - t > limit]:
            if not self._in_use(self._live[wid]):
                self._drop(wid)

    def _evict_one(self, now: float) -> bool:
        for wid, s in self._live.items():  # oldest first
            if now - self._used[wid] >= MIN_IDLE_TO_EVICT and not self._in_use(s):
                self._drop(wid)
                return True
        return False
