"""Short audio clips for the players (the Listen panel's behaviour, no gradio): the mixture or one
speaker's separated track around the selection or on a given region, as a 16-bit WAV served to its
session only. A separated track is played as loud as the mixture over the same span (separated
tracks come out 16-25 dB quieter, so switching between them would jump in level); exported tracks
keep the model's level."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from app.access import html_text
from app.workspace import file_url
from core.errors import PixitError

if TYPE_CHECKING:
    from app.session import Session

MAX_CLIP_SECONDS = 600.0
PEAK = 0.99  # a clip never clips
FRAME = 320  # 20 ms frames for loudness
ACTIVE_DB = 40.0  # a frame is active when less than this far below the track's loudest frame
MAX_GAIN_DB = 40.0  # a near-silent track is not blown up to noise


def matched_gain(track: np.ndarray, mixture: np.ndarray) -> float:
    """The gain that plays `track` as loud as `mixture` over the same span: the RMS of both over
    the track's active frames (where that speaker talks, so A/B at a turn keeps the level), capped
    so that the track's peak stays under PEAK and at MAX_GAIN_DB. 1.0 for a silent track."""
    n = min(len(track), len(mixture)) // FRAME * FRAME
    if n == 0:
        return 1.0
    t = np.asarray(track[:n], np.float64).reshape(-1, FRAME)
    energy = (t ** 2).mean(axis=1)
    if energy.max() <= 0:
        return 1.0
    active = energy > energy.max() * 10 ** (-ACTIVE_DB / 10)
    target = (np.asarray(mixture[:n], np.float64).reshape(-1, FRAME)[active] ** 2).mean()
    gain = np.sqrt(target / energy[active].mean())
    return float(min(gain, 10 ** (MAX_GAIN_DB / 20), PEAK / np.abs(track).max()))


def clip(S: Session, source: str, t0: float | None = None, t1: float | None = None) -> dict:
    """Write a short clip of the mixture or one speaker's separated track; returns player data."""
    import soundfile as sf

    m = S.meeting
    if m is None:
        raise PixitError("open a meeting first")
    if t0 is None or t1 is None:
        if S.selected is not None and S.doc.has(S.selected):
            s = S.doc.get(S.selected)
            t0, t1 = s.start - 0.5, s.end + 0.5
        else:
            t0, t1 = S.t0, S.t1
    t0 = max(0.0, float(t0))
    t1 = min(m.duration, float(t1))
    if t1 - t0 > MAX_CLIP_SECONDS:
        t1 = t0 + MAX_CLIP_SECONDS
    if t1 <= t0:
        raise PixitError("empty region")
    a, b = int(t0 * 16000), int(t1 * 16000)
    if source in ("mixture", "", None):
        x = m.samples(a, b)
        title = "Mixture"
    else:
        if S.run is None or S.run.sources is None:
            raise PixitError("run the model first: separated tracks come from it")
        cols = S.doc.tracks_of(source)
        labels = S.run.info["labels"]
        idx = [labels.index(c) for c in cols if c in labels]
        if not idx:
            raise PixitError(f"{source} has no separated track (it was added by hand)")
        x = np.asarray(S.run.sources[a:b, idx], np.float32).sum(axis=1)
        gain = matched_gain(x, m.samples(a, b))
        x = x * np.float32(gain)
        title = f"{source} (separated, level matched {20 * np.log10(gain):+.1f} dB)"
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > PEAK:
        x = x * (PEAK / peak)
    path = S.ws.clip_path()
    sf.write(path, x, 16000, subtype="PCM_16")
    return {"url": file_url(path, "clip"), "start": round(t0, 3), "end": round(t1, 3),
            "title": html_text(f"{title}, {t0:.2f}-{t1:.2f} s"), "source": source or "mixture"}
