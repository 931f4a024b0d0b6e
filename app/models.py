"""Which model folders a session may name, besides the startup model and its own retrained
versions: the model subfolders of the server's `--models` folders, by folder name only (so the
model box is no probe of the server's disk)."""

from __future__ import annotations

import re
from pathlib import Path


def served_models(settings) -> list[Path]:
    """The model folders (holding config.json) directly inside the server's --models folders."""
    out = []
    for d in settings.model_dirs or ():
        d = Path(d)
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if (p / "config.json").is_file())
    return out


def served_model(settings, name: str) -> Path | None:
    """The served model folder called `name` (a plain folder name), or None."""
    if not re.match(r"^[\w.\-]{1,100}$", name or "") or name.startswith("."):
        return None
    return next((p for p in served_models(settings) if p.name == name), None)
