"""File I/O that must not go wrong: atomic writes (a temporary file in the same folder, then a rename
over the target) and reading model weights from safetensors only (never a pickle)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from core.errors import ModelError


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text` so that readers see either the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file the usual permissions (mkstemp makes it 0600) and move it into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_safetensors(path: str | os.PathLike) -> dict:
    """A safetensors state dict (tensor name -> torch tensor), or a one-line ModelError."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:
        lines = str(e).strip().splitlines()
        raise ModelError(f"{path} cannot be read: {lines[0] if lines else type(e).__name__}") from None
