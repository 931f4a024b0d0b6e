"""PixIT Workbench library: joint speaker diarization + speech separation (ToTaToNet, PixIT)."""

from core.errors import PixitError

__all__ = ["PixitError"]
