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
        while fn runs so that one session's requests apply in arrival order. PixitError -> a
        clear message (gr.Error, no server path in it); anything unexpected is logged, and the
        session's state is left as it was (edits are only applied when they succeed)."""
        params = list(inspect.signature(fn).parameters.values())[1:]
        params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request))

        @functools.wraps(fn)
        def wrapped(*args):
            *values, request = args
            try:
                with self.session_of(request) as S, S.lock.turn(ticket_of(request)):
                    return fn(S, *values)
            except gr.Error:
                raise
            except PixitError as exc:
                raise gr.Error(public_message(exc), duration=8) from None
            except Exception as exc:
                log.exception("handler %s failed", fn.__name__)
                raise gr.Error(public_message(f"unexpected error ({type(exc).__name__}: {exc}); "
                                              "your edits are saved")) from None

        wrapped.__signature__ = inspect.Signature(params)
        wrapped.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty}
        del wrapped.__wrapped__
        return wrapped

    @contextlib.contextmanager
    def job_started(self, request: gr.Request, kind: str):
        """Start a model job of the asking session: it takes no turn in the session's lane (its
        edits go on meanwhile), user mistakes inside the block become a message, and the session
        stays in memory (S.busy) until `background_job` ends it."""
        with self.session_of(request) as S:
            S.lock.skip(ticket_of(request))
            try:
                yield S
            except PixitError as exc:
                raise gr.Error(public_message(exc), duration=8) from None
            S.stop.clear()
            S.busy = kind

    @staticmethod
    @contextlib.contextmanager
    def background_job(S: Session, job: Job, what: str):
        """Show a background job's failure as a message (user mistakes as they are, bugs logged) and
        always release the session: a job that is still running when the handler ends is cancelled."""
        try:
            yield
        except PixitError as exc:
            raise gr.Error(public_message(exc), duration=10) from None
        except Exception as exc:
            log.exception("%s failed", what)
            raise gr.Error(public_message(f"{what} failed ({type(exc).__name__}: {exc})")) from None
        finally:
            if not job.done.is_set():
                job.cancel()
            S.busy = None


def stop_work(S: Session) -> str:
    """Stop the session's model job (run or retraining) at its next check."""
    S.stop.set()
    return "Stopping... (the current step finishes first)" if S.busy else "Nothing is running."
