"""flite (Debian `flite`): CMU's small synthesiser with four English voices built in.

awb (Scottish English male), rms (US male) and slt (US female) are clustergen voices of CMU ARCTIC
speakers, kal16 a US male diphone voice; licence: CMU's BSD-like "free to use, modify and
distribute". Pitch: flite's target mean F0 (rms ignores it), tempo: its duration stretch.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache

import numpy as np

from core.synth.engines import BaseVoice, Engine, wav_from_program

# voice -> (person, mean F0 in Hz measured on an ARCTIC-like sentence, or None without pitch control)
VOICES = {"awb": ("awb", 129.0), "kal16": ("kal", 86.0), "rms": ("rms", None), "slt": ("slt", 175.0)}


class Flite(Engine):
    name = "flite"

    def available(self) -> bool:
        return shutil.which("flite") is not None

    @lru_cache(maxsize=1)
    def version(self) -> str:
        out = subprocess.run(["flite", "--version"], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    @lru_cache(maxsize=1)
    def voices(self) -> tuple[BaseVoice, ...]:
        if not self.available():
            return ()
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False).stdout.split()
        return tuple(BaseVoice("flite", v, person, english=True, pitch_control=f0 is not None)
                     for v, (person, f0) in VOICES.items() if v in listed)

    def render(self, ident: str, text: str, semitones: float, tempo: float) -> tuple[np.ndarray, int]:
        args = ["flite", "-voice", ident, "--setf", f"duration_stretch={1.0 / tempo:.4f}"]
        f0 = VOICES[ident][1]
        if f0 is not None:
            args += ["--setf", f"int_f0_target_mean={f0 * 2 ** (semitones / 12):.2f}"]
        return wav_from_program([*args, "-t", text, "-o", "{wav}"], f"flite voice {ident}")
