"""Speakers of the real recordings shipped in assets/real (name.wav + name.rttm) as voices.

Each speaker's solo regions (only that speaker annotated, 50 ms inside the annotation, >= 0.4 s)
become clips; an utterance of such a voice is one whole clip ("clip:<index>"). core.synth.voices
gives a meeting slot to a real voice now and then unless real voices are switched off (the recipe
of the shipped model switches them off: the real sample is its test, never its training data).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import PixitError
from core.synth.activity import SAMPLE_RATE
from core.synth.engines import BaseVoice, Engine

REAL_DIR = Path(__file__).resolve().parents[3] / "assets" / "real"


@lru_cache(maxsize=1)
def real_voice_clips() -> dict[str, tuple[np.ndarray, ...]]:
    """Solo speech of each speaker of the real recordings in assets/real (name.wav + name.rttm):
    regions where only that speaker is annotated, 50 ms inside the annotation, >= 0.4 s."""
    from core.annotation import read_rttm_single
    from core.audio import load_audio

    clips: dict[str, tuple[np.ndarray, ...]] = {}
    if not REAL_DIR.is_dir():
        return clips
    fade = np.linspace(0.0, 1.0, 160, dtype=np.float32)
    for wav in sorted(REAL_DIR.glob("*.wav")):
        rttm = wav.with_suffix(".rttm")
        if not rttm.is_file():
            continue
        try:
            audio = load_audio(wav)
            annotation = read_rttm_single(rttm)
        except PixitError:
            continue
        for label in sorted(annotation.labels()):
            others = [annotation.label_timeline(other) for other in annotation.labels() if other != label]
            solo = annotation.label_timeline(label).support()
            for other in others:
                solo = solo.extrude(other.support())
            pieces = []
            for seg in solo.support():
                start, end = int((seg.start + 0.05) * SAMPLE_RATE), int((seg.end - 0.05) * SAMPLE_RATE)
                if end - start >= int(0.4 * SAMPLE_RATE):
                    clip = audio[start:end].copy()
                    clip[:160] *= fade
                    clip[-160:] *= fade[::-1]
                    pieces.append(clip)
            if pieces:
                clips[f"{wav.stem}:{label}"] = tuple(pieces)
    return clips


class Real(Engine):
    name = "real"

    def available(self) -> bool:
        return bool(real_voice_clips())

    def version(self) -> str:
        return "assets/real"

    def voices(self) -> tuple[BaseVoice, ...]:
        return tuple(BaseVoice("real", name, f"real:{name}", english=True) for name in sorted(real_voice_clips()))

    def render(self, ident: str, text: str, semitones: float, tempo: float) -> tuple[np.ndarray, int]:
        pieces = real_voice_clips().get(ident, ())
        if not pieces:
            raise PixitError(f"no real recording for voice real:{ident}")
        return pieces[int(text.split(":")[1]) % len(pieces)], SAMPLE_RATE

    def short_clips(self, ident: str, max_seconds: float = 1.2) -> list[int]:
        """Indices of the clips short enough to serve as backchannels."""
        return [i for i, clip in enumerate(real_voice_clips().get(ident, ())) if len(clip) <= max_seconds * SAMPLE_RATE]
