"""Speech / non-speech detection with Silero VAD (PyPI `silero-vad`, MIT; its model ships inside the
wheel, so it works offline).

Why: the small joint model misses speech it is unsure about (quiet, far or unusual voices); a
dedicated VAD trained on thousands of hours of real speech knows where someone speaks, even if not
who. core.pipeline.speech uses it to give missed speech to the most likely speaker, and the
training recipe can use it as a speech-activity teacher for real recordings without turns.

The model is the TorchScript file of the installed wheel (never a file a user supplies). Importing
silero_vad sets torch's thread count to 1 as a side effect: the caller's setting is restored.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from core.errors import PixitError

SAMPLE_RATE = 16_000
FRAME = 512  # samples per Silero VAD step at 16 kHz (32 ms)


_THREADS: list[int] = []  # torch's thread count before silero_vad was imported


def available() -> bool:
    """True when the silero-vad package is installed."""
    import importlib.util

    return importlib.util.find_spec("silero_vad") is not None


def _restore_threads() -> None:
    import torch

    if _THREADS:
        torch.set_num_threads(_THREADS[0])


@lru_cache(maxsize=1)
def _model():
    import warnings

    import torch

    _THREADS[:] = [torch.get_num_threads()]
    try:
        from silero_vad import load_silero_vad
    except ImportError:
        raise PixitError("--vad silero needs the silero-vad package (pip install silero-vad)") from None
    finally:
        _restore_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # importlib.resources.path, torch.jit.load
        return load_silero_vad()


def speech_probabilities(waveform: np.ndarray) -> np.ndarray:
    """Probability of speech for every 32 ms frame (512 samples at 16 kHz) of a mono waveform."""
    import torch

    model = _model()
    model.reset_states()
    x = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    n = len(x) // FRAME
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    with torch.inference_mode():
        # the model's own batched call: all frames in one go, its recurrent state carried across them
        probs = model.audio_forward(x[: (n + 1) * FRAME] if len(x) >= (n + 1) * FRAME else x, sr=SAMPLE_RATE)
    return probs.reshape(-1)[:n].numpy().astype(np.float32)


def speech_mask(waveform: np.ndarray, num_frames: int, frame_step: int, frame_size: int, threshold: float = 0.5,
                min_speech: float = 0.25, min_silence: float = 0.1) -> np.ndarray:
    """Boolean speech mask on another frame grid (frame f covers [f*step, f*step + size)): Silero's
    probabilities thresholded with hysteresis (on at `threshold`, off at threshold - 0.15), pauses
    shorter than `min_silence` s filled and blips shorter than `min_speech` s dropped, then read at
    each target frame's centre."""
    probs = speech_probabilities(waveform)
    on = np.zeros(len(probs), dtype=bool)
    active = False
    for i, p in enumerate(probs):
        active = p >= threshold if not active else p >= threshold - 0.15
        on[i] = active
    on = _close(on, int(round(min_silence * SAMPLE_RATE / FRAME)), value=False)
    on = _close(on, int(round(min_speech * SAMPLE_RATE / FRAME)), value=True)
    centres = (np.arange(num_frames) * frame_step + frame_size / 2) / FRAME
    index = np.clip(centres.astype(np.int64), 0, max(len(on) - 1, 0))
    return on[index] if len(on) else np.zeros(num_frames, dtype=bool)


def _close(mask: np.ndarray, length: int, value: bool) -> np.ndarray:
    """Runs of `value` shorter than `length` frames flipped (value False: short pauses filled)."""
    out = mask.copy()
    if length <= 0 or not len(mask):
        return out
    padded = np.concatenate([[not value], mask, [not value]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start < length and (value or (start > 0 and end < len(mask))):
            out[start:end] = not value
    return out
