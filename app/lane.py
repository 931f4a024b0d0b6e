"""One session's requests, applied one at a time in the order they reached the server.

The old design ran every session's edits in one global Gradio queue of size 1: ordered, but a
slow edit of one session (a 100 000-turn meeting) made every other session wait. Now each
Session owns a Lane: sessions run side by side, and inside a session the middleware numbers each
request as it arrives (`ticket`, app/middleware.py) and the lane lets them in by that number.
Gradio starts queued events on worker threads, which can reach the lane in a different order
than they arrived; the lane waits up to GRACE seconds for an earlier ticket that has not arrived
yet. A request that takes no turn (a background job, Stop) gives its ticket back (`skip`); a
ticket that never shows up (an event Gradio dropped before calling its handler) only delays
the next one by GRACE.

A Lane is also a plain re-entrant lock (`with lane:`, no ticket): the Session's methods and its
background jobs use it that way, after any ticketed request already waiting.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import threading
import time

GRACE = 0.5  # seconds a request waits for an earlier ticket of its session that has not arrived


class Lane:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._held: int | None = None  # ticket of the current holder
        self._waiting: list[tuple] = []  # heap of (ticket or inf, arrival, thread)
        self._arrival = itertools.count()
        self._next: int | None = None  # lowest ticket not yet served or skipped
        self._skipped: set[int] = set()

    def acquire(self, ticket: int | None = None) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            entry = (math.inf if ticket is None else ticket, next(self._arrival), me)
            heapq.heappush(self._waiting, entry)
            since = time.monotonic()
            while True:
                if self._owner is None and self._waiting[0] is entry:
                    if ticket is None or self._next is None or ticket <= self._next:
                        break
                    late = time.monotonic() - since
                    if late >= GRACE:
                        break  # the earlier ticket is not coming
                    self._cond.wait(GRACE - late)
                else:
                    self._cond.wait()
            heapq.heappop(self._waiting)
            self._owner, self._depth, self._held = me, 1, ticket
            if ticket is not None:
                self._next = max(self._next or 0, ticket)
            return True

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a Lane this thread does not hold")
            self._depth -= 1
            if self._depth:
                return
            if self._held is not None:
                self._next = max(self._next or 0, self._held + 1)
                self._advance()
            self._owner, self._held = None, None
            self._cond.notify_all()

    def skip(self, ticket: int | None) -> None:
        """A request that takes no turn gives its ticket back, so that later ones need not wait."""
        if ticket is None:
            return
        with self._cond:
            self._skipped.add(ticket)
            self._advance()
            self._cond.notify_all()

    @contextlib.contextmanager
    def turn(self, ticket: int | None):
        self.acquire(ticket)
        try:
            yield
        finally:
            self.release()

    def busy(self) -> bool:
        """Held or waited for (a session in use must not be freed)."""
        with self._cond:
            return self._owner is not None or bool(self._waiting)

    def _advance(self) -> None:
        if self._next is None:
            return
        while self._next in self._skipped:
            self._next += 1
        self._skipped = {t for t in self._skipped if t > self._next}

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
