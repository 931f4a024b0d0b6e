"""What one run gives back (annotation, activations, per-speaker tracks), and how it is saved:
RTTM, one WAV per speaker, and the JSON summary written last, so its presence marks a complete output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pyannote.core import Annotation, SlidingWindowFeature

from core.audio import save_audio


@dataclass
class SeparationResult:
    uri: str
    annotation: Annotation
    activations: SlidingWindowFeature  # (frames, speakers), column i = labels[i]
    sources: np.ndarray | None         # (samples, speakers) float32, column i = labels[i]
    labels: list[str]
    sample_rate: int
    duration: float
    timings: dict[str, float]
    params: dict = field(default_factory=dict)
    model: str = ""
    warnings: list[str] = field(default_factory=list)
    intervals: list = field(default_factory=list, repr=False)  # per label: (n, 2) active sample intervals
    file: str = ""  # the audio file's name as given (the uri is derived from it: core.annotation.uri_for)
    speaker_note: str = ""  # why fewer speakers came out than were asked for (also in warnings)

    def speech_time(self) -> dict[str, float]:
        return {label: float(self.annotation.label_duration(label)) for label in self.labels}

    def summary(self) -> dict[str, Any]:
        speech = self.speech_time()
        return {
            "uri": self.uri,
            **({"file": self.file} if self.file else {}),
            "duration": round(self.duration, 3),
            "sample_rate": self.sample_rate,
            "num_speakers": len(self.labels),
            "speakers": [
                {"label": l, "speech": round(speech[l], 3), **({"wav": f"{self.uri}/{l}.wav"} if self.sources is not None else {})}
                for l in self.labels
            ],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "params": self.params,
            "model": self.model,
            "warnings": self.warnings,
        }

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write <uri>.rttm, <uri>/<label>.wav (float32; a track whose peak exceeds 1 is scaled to
        0.99 so that 16-bit conversions do not clip; the factor is in the JSON) and <uri>.json,
        written last so that its presence marks a complete output."""
        from core.annotation import write_rttm
        from core.fileio import atomic_write_json

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {"rttm": out_dir / f"{self.uri}.rttm"}
        write_rttm(self.annotation, paths["rttm"], uri=self.uri)
        summary = self.summary()
        if self.sources is not None:
            folder = out_dir / self.uri
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("SPEAKER_*.wav"):  # tracks of an earlier run with more speakers
                if re.fullmatch(r"SPEAKER_\d+\.wav", stale.name) and stale.stem not in self.labels:
                    stale.unlink()
            for i, label in enumerate(self.labels):
                track = self.sources[:, i]
                peak = float(np.max(np.abs(track))) if len(track) else 0.0
                gain = 0.99 / peak if peak > 1.0 else 1.0
                save_audio(folder / f"{label}.wav", track * np.float32(gain) if gain != 1.0 else track, self.sample_rate)
                paths[label] = folder / f"{label}.wav"
                summary["speakers"][i]["gain"] = round(gain, 6)
        paths["json"] = out_dir / f"{self.uri}.json"
        atomic_write_json(paths["json"], summary)
        return paths
