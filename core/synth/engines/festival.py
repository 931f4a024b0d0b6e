"""Festival (Debian `festival` + festvox voice packages), driven through its `text2wave` script.

kal_diphone (`festvox-kallpc16k`, US male) and ked_diphone (`festvox-kdlpc16k`, US male), CMU /
CSTR free licences; cmu_us_slt_arctic_hts (`festvox-us-slt-hts`, US female, HTS statistical
voice, BSD-3 / EST licences). Tempo: festival's Duration_Stretch; no pitch control here (the
vocal-tract warp of core.synth.voices still moves it).
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import PixitError
from core.synth.engines import BaseVoice, Engine, wav_from_program

VOICE_ROOT = Path("/usr/share/festival/voices")
# festival voice name -> person (kal_diphone is the speaker of flite's kal16, slt the one of flite's slt)
VOICES = {"kal_diphone": "kal", "ked_diphone": "ked", "cmu_us_slt_arctic_hts": "slt"}


class Festival(Engine):
    name = "festival"

    def available(self) -> bool:
        return shutil.which("text2wave") is not None

    @lru_cache(maxsize=1)
    def version(self) -> str:
        out = subprocess.run(["festival", "--version"], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    @lru_cache(maxsize=1)
    def voices(self) -> tuple[BaseVoice, ...]:
        if not self.available():
            return ()
        installed = {p.name for p in VOICE_ROOT.glob("*/*") if p.is_dir()}
        return tuple(BaseVoice("festival", v, person, english=True) for v, person in VOICES.items() if v in installed)

    def render(self, ident: str, text: str, semitones: float, tempo: float) -> tuple[np.ndarray, int]:
        if ident not in VOICES:
            raise PixitError(f"unknown festival voice {ident}")
        command = ["text2wave", "-eval", f"(voice_{ident})", "-eval", f"(Parameter.set 'Duration_Stretch {1.0 / tempo:.4f})",
                   "-o", "{wav}"]
        return wav_from_program(command, f"festival voice {ident}", stdin=text.encode())
