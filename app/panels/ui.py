"""What every panel's handlers share: the `UI` (components by name, the asking session, the
handler guard that turns a user mistake into a clear message, the outputs an edit redraws)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from typing import Callable

import gradio as gr

from app.access import Access, public_message, ticket_of, token_of
from app.jobs import Job
from app.registry import Sessions
from app.session import Session, Settings
from core.errors import PixitError

log = logging.getLogger("pixit.app")

# a session's edits and shortcuts run one at a time in arrival order (its Lane, entered by
# `guard`); sessions do not wait for each other (up to 16 edits of different sessions at once)
EDIT_QUEUE = {"concurrency_id": "edit", "concurrency_limit": 16, "show_progress": "hidden"}

# the outputs every change of the open meeting redraws, in this order (the API's output order)
VIEW_NAMES = ("timeline", "status", "summary", "sel_info", "sel_start", "sel_end", "sel_speaker", "cursor",
              "spk_a", "spk_b", "spk_c", "listen", "table")
LIST_NAMES = ("meeting_dd", "model_dd")
PLAYER_NAMES = ("player", "compare_player")


class UI:
    """The components (attributes set by each panel's `layout`) and the shared handler plumbing."""

    def __init__(self, settings: Settings, registry: Sessions, access: Access,
                 render: Callable[[Session], tuple], render_lists: Callable[[Session], tuple]):
        self.settings, self.registry, self.access = settings, registry, access
        self._render, self._render_lists = render, render_lists

    # ---------------------------------------------------------------- outputs
    @property
    def VIEW(self) -> list:
        return [getattr(self, n) for n in VIEW_NAMES]

    @property
    def LISTS(self) -> list:
        return [getattr(self, n) for n in LIST_NAMES]

    @property
    def PLAYERS(self) -> list:
        return [getattr(self, n) for n in PLAYER_NAMES]

    def view(self, S: Session) -> tuple:
        """Values of the VIEW outputs."""
        return self._render(S)

    def lists(self, S: Session) -> tuple:
        """Values of the LISTS outputs (meetings, models)."""
        return self._render_lists(S)

    # ---------------------------------------------------------------- sessions
    @contextlib.contextmanager
    def session_of(self, request: gr.Request):
        """The asking session (from its cookie), kept in memory while the request is handled."""
        token = token_of(request)
        try:
            if token is None:  # the middleware refuses such requests; a Blocks mounted without it lands here
                raise PixitError("no session cookie: reload the page")
            S = self.registry.checkout(token)
        except PixitError as exc:
            raise gr.Error(public_message(exc), duration=10) from None
        try:
            yield S
        finally:
            self.registry.release(S)

    def guard(self, fn: Callable) -> Callable:
        """Wire `fn(S, *inputs)` as a handler: S is the asking session (from its cookie), held
        while fn runs so that one session's requests apply in arrival order. A user mistake
        (PixitError) or a bug changes nothing and keeps the view: see `refused`."""
        params = list(inspect.signature(fn).parameters.values())[1:]
        params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request))

        @functools.wraps(fn)
        def wrapped(*args):
            *values, request = args
            with self.session_of(request) as S, S.lock.turn(ticket_of(request)):
                try:
                    return fn(S, *values)
                except gr.Error:
                    raise
                except Exception as exc:
                    return self.refused(S, exc, wrapped.pixit_outputs, fn.__name__)

        wrapped.__signature__ = inspect.Signature(params)
        wrapped.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty}
        wrapped.pixit_outputs = None  # set by `know_outputs` once the events are wired
        del wrapped.__wrapped__
        return wrapped

    def know_outputs(self, demo: gr.Blocks) -> None:
        """Tell each guarded handler its event's outputs (what `refused` redraws or skips)."""
        for block_fn in demo.fns.values():
            if hasattr(block_fn.fn, "pixit_outputs"):
                block_fn.fn.pixit_outputs = list(block_fn.outputs)

    def refused(self, S: Session, exc: BaseException, outputs: list | None, where: str):
        """The answer to a request that failed: one toast, one log line (a traceback only for a
        bug), the message (no server path) in the status line, the open meeting redrawn as it is
        (a handler of the VIEW outputs), an upload widget emptied and every other output left as it was. Only an event
        with neither the VIEW nor the status line gets a plain error on its own outputs."""
        if isinstance(exc, PixitError):
            message = public_message(exc)
            log.warning("%s: refused: %s", where, message)
        else:
            log.exception("handler %s failed", where)
            message = public_message(f"unexpected error ({type(exc).__name__}: {exc}); your edits are saved")
        outputs = outputs or []
        view = self.VIEW
        if outputs[:len(view)] != view and self.status not in outputs:
            raise gr.Error(message, duration=8, print_exception=False)
        gr.Warning(message, duration=8)
        S.message = f"**Not done:** {message}"
        # an upload widget is emptied: its file was deleted (app/access.py), no link to it stays
        rest = [None if isinstance(o, gr.File) else S.message if o is self.status else gr.skip() for o in outputs]
        values = list(self.view(S)) + rest[len(view):] if outputs[:len(view)] == view else rest
        return values[0] if len(values) == 1 else tuple(values)

    def start_job(self, request: gr.Request, kind: str, prepare: Callable[[Session], object]):
        """Start a model job of the asking session: `prepare(S)` checks the request and returns
        the job's arguments. The job takes no turn in the session's lane (its edits go on
        meanwhile) and keeps the session in memory (S.busy) until `background_job` ends it.
        Returns (S, arguments, None), or (S, None, the PixitError) when the request is refused."""
        with self.session_of(request) as S:
            S.lock.skip(ticket_of(request))
            try:
                args = prepare(S)
            except PixitError as exc:
                return S, None, exc
            S.stop.clear()
            S.busy = kind
            return S, args, None

    @contextlib.contextmanager
    def background_job(self, S: Session, job: Job, what: str):
        """Run the block that follows a background job; a failure becomes one toast, one log
        line and the status message (the handler then redraws the view as it is), and the
        session is always released: a job still running when the handler ends is cancelled."""
        try:
            yield
        except PixitError as exc:
            message = public_message(exc)
            log.warning("%s: refused: %s", what, message)
            gr.Warning(message, duration=10)
            S.message = f"**Not done:** {message}"
        except Exception as exc:
            log.exception("%s failed", what)
            message = public_message(f"{what} failed ({type(exc).__name__}: {exc})")
            gr.Warning(message, duration=10)
            S.message = f"**Not done:** {message}"
        finally:
            if not job.done.is_set():
                job.cancel()
            S.busy = None


def stop_work(S: Session) -> str:
    """Stop the session's model job (run or retraining) at its next check."""
    S.stop.set()
    return "Stopping... (the current step finishes first)" if S.busy else "Nothing is running."
