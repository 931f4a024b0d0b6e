"""Background work with progress and a cooperative stop (model runs, retraining), and the one
model worker they share."""

from __future__ import annotations

import threading
import time
from typing import Callable

from core.errors import Cancelled


class Worker:
    """The one model worker every session shares (one model job at a time on the machine). A job
    waits for it in its own thread, not in Gradio's queue, so that its progress can say in words
    what it waits for (Gradio's queue only shows "queue: 1/1")."""

    def __init__(self):
        self._lock = threading.Lock()
        self._holder: tuple[str, str] | None = None  # (session id, what it runs)

    def try_take(self, owner: tuple[str, str]) -> bool:
        """Take the worker for `owner` (session id, what it runs) if it is free."""
        with self._lock:
            if self._holder is not None:
                return False
            self._holder = owner
            return True

    def release(self) -> None:
        with self._lock:
            self._holder = None

    def waiting_for(self, sid: str) -> str:
        """What a job of session `sid` waits for, in words."""
        holder = self._holder
        if holder is None:
            return "waiting for a free worker"
        if holder[0] == sid:
            return f"waiting for another job of this session ({holder[1]}) to finish"
        return f"waiting for a free worker (another session's {holder[1]} is using it)"


WORKER = Worker()


class Job:
    """Runs fn(progress, should_stop) in a thread; the caller polls `updates()` (a generator), so a
    gradio generator handler can yield progress while the work runs, and Stop sets the flag the work
    checks (the worker really stops: training and inference poll should_stop). With a `worker`,
    the thread first waits for it (`waiting` is then True and `msg` says what for); Stop ends
    the wait too."""

    def __init__(self, fn: Callable, stop: threading.Event, worker: Worker | None = None,
                 owner: tuple[str, str] = ("", "model job")):
        self.stop = stop
        self.frac, self.msg = 0.0, "starting"
        self.waiting = worker is not None
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()

        def progress(frac: float, msg: str = "") -> None:
            self.frac, self.msg = float(min(max(frac, 0.0), 1.0)), msg or self.msg

        def target():
            taken = False
            try:
                if worker is not None:
                    while not (taken := worker.try_take(owner)):
                        if self.stop.is_set():
                            raise Cancelled("stopped while waiting for the worker")
                        self.msg = worker.waiting_for(owner[0])
                        time.sleep(0.1)
                    self.waiting, self.msg = False, "starting"
                self.result = fn(progress, self.stop.is_set)
            except BaseException as exc:  # reported to the caller
                self.error = exc
            finally:
                if taken:
                    worker.release()
                self.done.set()

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def updates(self, every: float = 0.25):
        while not self.done.wait(every):
            yield self.frac, self.msg
        yield self.frac, self.msg

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.result

    def cancel(self, wait: float = 60.0) -> None:
        self.stop.set()
        self.thread.join(wait)
