"""User-facing errors.

Every mistake a user can make (bad file, bad option, bad model folder) raises a subclass of
`PixitError` with a one-line message; the CLI prints it without a traceback and the app shows it.
"""


class PixitError(Exception):
    """A problem with the user's input, explained in one line."""


class AudioError(PixitError):
    """Audio that cannot be read or used."""


class AnnotationError(PixitError):
    """A malformed or inconsistent RTTM / UEM / segment."""


class ModelError(PixitError):
    """A model folder or checkpoint that cannot be loaded."""


class Failed(PixitError):
    """Long work that ran but could not give a result (a training whose loss turned NaN): the CLI
    exits with status 1, not 2, since the input was accepted."""


class Cancelled(PixitError):
    """Long work (training, inference) stopped because the user asked."""


class Interrupted(Cancelled):
    """Long work stopped by a signal (SIGTERM from a scheduler, Ctrl+C); `signum` says which."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class HubError(PixitError):
    """A Hugging Face Hub repo or file that cannot be fetched or written (gated, unknown, offline ...)."""
