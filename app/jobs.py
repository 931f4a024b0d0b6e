"""Background work with progress and a cooperative stop (model runs, retraining)."""

from __future__ import annotations

import threading
from typing import Callable


class Job:
    """Runs fn(progress, should_stop) in a thread; the caller polls `updates()` (a generator), so a
    gradio generator handler can yield progress while the work runs, and Stop sets the flag the work
    checks (the worker really stops: training and inference poll should_stop)."""

    def __init__(self, fn: Callable, stop: threading.Event):
        self.stop = stop
        self.frac, self.msg = 0.0, "starting"
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()

        def progress(frac: float, msg: str = "") -> None:
            self.frac, self.msg = float(min(max(frac, 0.0), 1.0)), msg or self.msg

        def target():
            try:
                self.result = fn(progress, self.stop.is_set)
            except BaseException as exc:  # reported to the caller
                self.error = exc
            finally:
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
