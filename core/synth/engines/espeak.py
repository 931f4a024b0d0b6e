"""espeak-ng (Debian `espeak-ng`, always installed by .ci/setup): formant synthesis, many languages.

Base voices are the speech-like voice variants (robots, whisper and effect voices excluded); the
language (an English accent with probability 0.6, else one of the Latin-script languages, spoken as
pseudo-words) is drawn per pseudo-speaker by core.synth.voices. Pitch maps to espeak's 0-99 pitch
setting (50 + 7 per semitone), tempo to words per minute (175 x tempo).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from functools import lru_cache

import numpy as np

from core.errors import PixitError
from core.synth.engines import BaseVoice, Engine

# Latin-script languages (our pseudo-sentences are written in Latin letters) and English accents.
ENGLISH_LANGUAGES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                     "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
OTHER_LANGUAGES = ("af", "az", "ca", "cs", "cy", "da", "de", "eo", "es", "es-419", "et", "eu", "fi",
                   "fr-fr", "fr-be", "ga", "haw", "hr", "ht", "hu", "ia", "id", "io", "is", "it",
                   "la", "lfn", "lt", "lv", "mi", "ms", "mt", "nb", "nl", "pl", "pt", "pt-br", "ro",
                   "sk", "sl", "sq", "sv", "sw", "tn", "tr", "vi")
# Variants that do not sound like a person (robots, effects, whisper, test voices).
_EXCLUDED_VARIANTS = {"demonic", "announcer", "unirobot", "anikarobot", "fast", "whisper",
                      "whisperf", "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5",
                      "robosoft6", "robosoft7", "robosoft8", "croak"}


def espeak_available() -> bool:
    """True when the `espeak-ng` program can be run."""
    return shutil.which("espeak-ng") is not None


def require_espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise PixitError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    return path


@lru_cache(maxsize=1)
def available_voice_parts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(languages, variants) offered by the installed espeak-ng, restricted to speech-like ones."""
    exe = require_espeak()
    langs = subprocess.run([exe, "--voices"], capture_output=True, text=True, check=False).stdout
    installed = {line.split()[1].lower() for line in langs.splitlines()[1:] if len(line.split()) > 1}
    languages = tuple(lang for lang in ENGLISH_LANGUAGES + OTHER_LANGUAGES if lang in installed)
    var = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, check=False).stdout
    variants = []
    for line in var.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            ident = fields[4][3:]
            if ident.lower() not in _EXCLUDED_VARIANTS and ident not in variants:
                variants.append(ident)
    if not languages or not variants:
        raise PixitError("espeak-ng offers no usable voices (is espeak-ng-data installed?)")
    return languages, tuple(sorted(variants))


class Espeak(Engine):
    name = "espeak"

    def available(self) -> bool:
        return espeak_available()

    @lru_cache(maxsize=1)
    def version(self) -> str:
        out = subprocess.run([require_espeak(), "--version"], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    @lru_cache(maxsize=1)
    def voices(self) -> tuple[BaseVoice, ...]:
        if not self.available():
            return ()
        _, variants = available_voice_parts()
        return tuple(BaseVoice("espeak", v, f"espeak:{v}", english=True, pitch_control=True) for v in variants)

    def render(self, ident: str, text: str, semitones: float, tempo: float) -> tuple[np.ndarray, int]:
        """`ident` is "language+variant" here (the language is part of the pseudo-speaker)."""
        import soundfile as sf

        pitch = int(np.clip(round(50 + 7 * semitones), 0, 99))
        speed = int(np.clip(round(175 * tempo), 80, 450))
        proc = subprocess.run([require_espeak(), "-v", ident, "-p", str(pitch), "-s", str(speed), "--stdout"],
                              input=text.encode(), capture_output=True, check=False)
        if proc.returncode != 0 or len(proc.stdout) < 100:
            reason = proc.stderr.decode(errors="replace").strip().splitlines()
            raise PixitError(f"espeak-ng failed for voice {ident}: {reason[0] if reason else 'no audio'}")
        data, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
        return data, sr
