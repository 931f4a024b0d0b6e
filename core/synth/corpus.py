"""Corpora of synthetic meetings on disk: `make_corpus(out_dir, ...)` (what `pixit synth` runs).

Layout:

    out_dir/manifest.csv             audio,rttm,uem,sources (paths relative to out_dir)
    out_dir/<uri>.wav                the mixture  == sum(sources/<uri>/*.wav) + noise/<uri>.wav
    out_dir/<uri>.rttm / <uri>.uem   speaker turns (from the dry speech activity) / whole recording
    out_dir/sources/<uri>/<label>.wav  reverberant image of each speaker (labels spk0, spk1, ...)
    out_dir/noise/<uri>.wav          the background noise (kept out of sources/ on purpose)
    out_dir/meta/<uri>.json          voices, gains, room, noise, channel, overlap statistics
    out_dir/stats.json               corpus statistics (speech / overlap ratio)

Resumable: a meeting whose files an earlier run with the same settings completed is kept, not made
again (meeting i depends only on the seed and i), so an interrupted `pixit synth` goes on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import Cancelled, PixitError
from core.fileio import atomic_write_json, atomic_write_text
from core.synth.activity import SAMPLE_RATE
from core.synth.acoustics import AcousticsConfig, with_defaults
from core.synth.conversation import ConversationConfig
from core.synth.engines.espeak import require_espeak
from core.synth.meeting import Meeting, make_meeting, speech_statistics
from core.synth.voices import default_cache_dir, parse_engines, pick_voices, require_voices

ProgressFn = Callable[[float, str], None]


def parse_speakers(text: str) -> tuple[int, int]:
    """'2-4' -> (2, 4); '3' -> (3, 3). Raises PixitError for anything else."""
    parts = str(text).strip().split("-")
    try:
        if len(parts) == 1:
            low = high = int(parts[0])
        elif len(parts) == 2:
            low, high = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise PixitError(f"--speakers must look like MIN-MAX (e.g. 2-4), got {text!r}") from None
    return validate_speakers((low, high))


def validate_speakers(speakers: tuple[int, int]) -> tuple[int, int]:
    low, high = (int(speakers[0]), int(speakers[1]))
    if low < 1:
        raise PixitError(f"--speakers: the minimum must be at least 1, got {low}-{high}")
    if high < low:
        raise PixitError(f"--speakers: the maximum is smaller than the minimum ({low}-{high})")
    if high > 10:
        raise PixitError(f"--speakers: at most 10 speakers per meeting, got {low}-{high}")
    return low, high


def make_corpus(out_dir: str | os.PathLike, num_meetings: int, duration: float,
                speakers: tuple[int, int] = (2, 3), seed: int = 0, *, prefix: str = "meeting",
                reverb: bool = True, noise: bool = True, write_sources: bool = True,
                pcm16: bool = False, cache_dir: str | os.PathLike | None = "default", real_voices: bool = True,
                config: ConversationConfig | None = None, engines: str | tuple[str, ...] = ("espeak",),
                voice_set: str = "all", acoustics: AcousticsConfig | str | None = None, progress: ProgressFn | None = None,
                should_stop: Callable[[], bool] | None = None, same_speakers: bool = False) -> Path:
    """Write `num_meetings` synthetic meetings of `duration` seconds into `out_dir`; return the
    manifest path. Same seed -> identical audio and annotations; meeting i does not depend on
    `num_meetings`. Each meeting draws its number of speakers in `speakers` (min, max); in a very
    short meeting a speaker who never gets a word in is left out (sources == RTTM labels).

    cache_dir: "default" (see default_cache_dir), a folder, or None for no cache.
    same_speakers: every meeting has the same people (a series: drawn once, `speakers` must be one number),
    each in its own conversation, room and noise.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PixitError(f"--out {out} exists and is not a folder")
    try:
        num_meetings = int(num_meetings)
        duration = float(duration)
        seed = int(seed)
    except (TypeError, ValueError):
        raise PixitError("num_meetings, duration and seed must be numbers") from None
    if num_meetings < 1:
        raise PixitError(f"--num-meetings must be at least 1, got {num_meetings}")
    if not np.isfinite(duration) or duration <= 0:
        raise PixitError(f"--duration must be a positive number of seconds, got {duration:g}")
    if duration > 2 * 3600:
        raise PixitError(f"--duration is at most 2 hours (7200 s) per meeting, got {duration:g}")
    if seed < 0:
        raise PixitError(f"--seed must be >= 0, got {seed}")
    if not prefix or any(ch in prefix for ch in "/\\ \t\n,"):
        raise PixitError(f"--prefix must be a plain name without spaces, slashes or commas, got {prefix!r}")
    low, high = validate_speakers(speakers)
    if same_speakers and low != high:
        raise PixitError(f"--same-speakers needs one number of speakers (e.g. --speakers 3), got {low}-{high}")
    engine_names = parse_engines(engines)
    if "espeak" in engine_names:
        require_espeak()
    require_voices(engine_names, voice_set, high)
    acoustics = with_defaults(acoustics)
    cache = default_cache_dir() if cache_dir == "default" else (Path(cache_dir) if cache_dir else None)

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PixitError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    rows = []
    stats = []
    started = time.perf_counter()
    width = max(3, len(str(num_meetings - 1)))
    settings = json.dumps([seed, duration, low, high, engine_names, voice_set, asdict(acoustics), reverb, noise,
                           real_voices, asdict(config or ConversationConfig()), write_sources, pcm16]
                          + (["same_speakers"] if same_speakers else []), default=str)
    fingerprint = hashlib.sha1(settings.encode()).hexdigest()[:16]
    series = (pick_voices(np.random.default_rng([seed, 1 << 20]), high, real=real_voices, engine_names=engine_names,
                          voice_set=voice_set) if same_speakers else None)
    for i in range(num_meetings):
        if should_stop is not None and should_stop():
            raise Cancelled(f"synthesis stopped after {i} of {num_meetings} meetings")
        uri = f"{prefix}{i:0{width}d}"
        if progress is not None:
            progress(i / num_meetings, f"meeting {i + 1}/{num_meetings} ({uri})")
        rows.append((f"{uri}.wav", f"{uri}.rttm", f"{uri}.uem", f"sources/{uri}" if write_sources else ""))
        done = _finished_meeting(out, uri, fingerprint)  # an interrupted run goes on where it stopped
        if done is not None:
            stats.append(done)
            continue
        rng = np.random.default_rng([seed, i])
        n_spk = int(rng.integers(low, high + 1))
        meeting = make_meeting(uri, duration, n_spk, rng, config=config, reverb=reverb, noise=noise,
                               cache_dir=cache, real_voices=real_voices,
                               engine_names=engine_names, voice_set=voice_set, acoustics=acoustics, voices=series)
        meeting.meta["settings"] = fingerprint
        write_meeting(meeting, out, write_sources=write_sources, pcm16=pcm16)
        stats.append(meeting.meta)
    elapsed = time.perf_counter() - started
    lines = ["audio,rttm,uem,sources"] + [",".join(row) for row in rows]
    manifest = out / "manifest.csv"
    atomic_write_text(manifest, "\n".join(lines) + "\n")
    speech = sum(m["speech_time"] for m in stats)
    overlap = sum(m["overlap_time"] for m in stats)
    atomic_write_json(out / "stats.json", {
        "meetings": num_meetings, "duration": duration, "speakers": [low, high], "seed": seed,
        "engines": list(engine_names), "voice_set": voice_set, "real_voices": real_voices,
        "same_speakers": same_speakers, "acoustics": asdict(acoustics),
        "total_duration": round(num_meetings * duration, 3), "speech_time": round(speech, 3),
        "overlap_time": round(overlap, 3), "overlap_ratio": round(overlap / speech, 4) if speech else 0.0,
        "seconds": round(elapsed, 3),
        "seconds_per_minute": round(elapsed / (num_meetings * duration / 60), 3),
    })
    if progress is not None:
        progress(1.0, f"{num_meetings} meetings written to {out}")
    return manifest


def _finished_meeting(out: Path, uri: str, fingerprint: str) -> dict | None:
    """The meta of meeting `uri` if an earlier run with the same settings wrote it completely
    (meta/<uri>.json is written last), else None."""
    path = out / "meta" / f"{uri}.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if meta.get("settings") == fingerprint and (out / f"{uri}.wav").is_file() else None


def write_meeting(meeting: Meeting, out: Path, write_sources: bool = True, pcm16: bool = False) -> None:
    """Write one meeting into the corpus layout (mixture, rttm, uem, sources, noise, meta)."""
    from pyannote.core import Segment, Timeline

    from core.annotation import write_rttm, write_uem

    uri = meeting.uri
    save = _save_pcm16 if pcm16 else _save_float
    save(out / f"{uri}.wav", meeting.mixture)
    write_rttm(meeting.annotation(), out / f"{uri}.rttm", uri=uri)
    write_uem(Timeline([Segment(0.0, meeting.duration)], uri=uri), out / f"{uri}.uem", uri=uri)
    if write_sources:
        folder = out / "sources" / uri
        folder.mkdir(parents=True, exist_ok=True)
        if folder.is_dir():  # a rerun with fewer speakers must not leave stale labels behind
            for old in folder.glob("*.wav"):
                if old.stem not in meeting.labels:
                    old.unlink()
        for label, source in zip(meeting.labels, meeting.sources):
            save(folder / f"{label}.wav", source)
        save(out / "noise" / f"{uri}.wav", meeting.noise)
    atomic_write_json(out / "meta" / f"{uri}.json", meeting.meta)


def _save_float(path: Path, waveform: np.ndarray) -> None:
    from core.audio import save_audio

    save_audio(path, waveform, SAMPLE_RATE)


def _save_pcm16(path: Path, waveform: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.wav")
    os.close(fd)
    try:
        sf.write(tmp, np.clip(waveform, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; shipped / shared files should be readable
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def corpus_statistics(manifest: str | os.PathLike) -> dict[str, float]:
    """Speech / overlap statistics of a corpus, from its RTTM and UEM files (any manifest)."""
    from core.annotation import read_rttm_single
    from core.audio import audio_info

    manifest = Path(manifest)
    speech = overlap = total = 0.0
    with open(manifest, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            duration = audio_info(manifest.parent / row["audio"])[0]
            annotation = read_rttm_single(manifest.parent / row["rttm"])
            segments: dict[str, list[tuple[float, float]]] = {}
            for seg, _, label in annotation.itertracks(yield_label=True):
                segments.setdefault(str(label), []).append((seg.start, seg.end))
            s = speech_statistics(segments, duration)
            speech += s["speech_time"]
            overlap += s["overlap_time"]
            total += duration
    return {"duration": round(total, 3), "speech_time": round(speech, 3), "overlap_time": round(overlap, 3),
            "overlap_ratio": round(overlap / speech, 4) if speech else 0.0}
