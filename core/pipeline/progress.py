"""Progress reports and cancellation, shared by the stages.

Every long loop calls `_check` once per batch, so a Stop button (`should_stop`) ends a run between
two batches and a progress bar moves while an hour of audio is processed.
"""

from __future__ import annotations

from typing import Callable

from core.errors import Cancelled

Progress = Callable[[float, str], None] | None
ShouldStop = Callable[[], bool] | None


def _check(progress: Progress, should_stop: ShouldStop, fraction: float, message: str) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("stopped by the user")
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)
