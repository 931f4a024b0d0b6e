"""A re-entrant lock granted in the order it was asked for.

`threading.RLock` wakes waiters in no particular order; a session's edits, shortcuts and
navigation must be applied one at a time *in the order they arrived*, without making other
sessions wait (that was the old global edit queue). Each Session owns one FairLock.
"""

from __future__ import annotations

import threading
from collections import deque


class FairLock:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._waiting: deque[int] = deque()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            self._waiting.append(me)
            while self._owner is not None or self._waiting[0] != me:
                self._cond.wait()
            self._waiting.popleft()
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a FairLock this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    def busy(self) -> bool:
        """Held or waited for (a session in use must not be freed)."""
        with self._cond:
            return self._owner is not None or bool(self._waiting)

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()
