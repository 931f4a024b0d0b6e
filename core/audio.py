"""Audio input/output: everything becomes mono float32 at 16 kHz.

soundfile reads wav/flac/ogg (and mp3 where libsndfile supports it); resampling is polyphase
(scipy), which is exact for the common 8/22.05/44.1/48 kHz rates.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from core.errors import AudioError
from core.fileio import publish

SAMPLE_RATE = 16_000


def audio_info(path: str | os.PathLike) -> tuple[float, int, int]:
    """(duration in seconds, sample rate, channels) without reading the samples."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / OSError
        raise AudioError(f"{Path(path).name}: cannot read audio ({_reason(exc, path)})") from None
    return info.frames / info.samplerate, info.samplerate, info.channels


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any soundfile-readable file as a mono float32 waveform at `sample_rate`.

    Raises AudioError for unreadable, empty or non-finite audio.
    """
    name = Path(path).name
    if not Path(path).is_file():
        raise AudioError(f"{name}: no such audio file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{name}: cannot read audio ({_reason(exc, path)})") from None
    return prepare_waveform(data, sr, sample_rate, name=name)


def prepare_waveform(
    data: np.ndarray, sr: int, sample_rate: int = SAMPLE_RATE, name: str = "audio"
) -> np.ndarray:
    """Downmix (time, channels) or (time,) audio to mono, check it, resample to `sample_rate`."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.ndim != 1:
        raise AudioError(f"{name}: expected (time,) or (time, channels) audio, got shape {data.shape}")
    if data.size == 0:
        raise AudioError(f"{name}: the audio is empty (0 samples)")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{name}: the audio contains NaN or infinite samples")
    if sr <= 0:
        raise AudioError(f"{name}: invalid sample rate {sr}")
    if sr != sample_rate:
        ratio = Fraction(sample_rate, sr).limit_denominator(1000)
        data = resample_poly(data, ratio.numerator, ratio.denominator).astype(np.float32)
    return np.ascontiguousarray(data)


def save_audio(path: str | os.PathLike, waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a float32 WAV atomically (a crash never leaves a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.wav")
    os.close(fd)
    try:
        sf.write(tmp, np.asarray(waveform, dtype=np.float32), sample_rate, subtype="FLOAT")
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _reason(exc: Exception, path: str | os.PathLike) -> str:
    """The first line of a reader's error, naming the file as the user did (its name), never
    by the folder it sits in (a server's temporary upload folder, say)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace(str(path), Path(path).name)
