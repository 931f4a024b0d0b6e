"""One synthetic meeting in memory: talkers (core.synth.voices), their conversation
(core.synth.conversation) and its recording (core.synth.acoustics).

The mixture is exactly the sum of the per-speaker sources (each speaker's reverberant, channel-
filtered image) and the noise (background noise, channel-filtered, plus whatever a codec changed);
the RTTM comes from the energy VAD of each dry utterance (core.synth.activity).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.synth.activity import SAMPLE_RATE, activity_segments, merge_segments
from core.synth.acoustics import (AcousticsConfig, apply_codec, apply_linear_channel, draw_channel, draw_room,
                                  noise_mix, room_impulse_response, with_defaults)
from core.synth.conversation import ConversationConfig, plan_conversation
from core.synth.text import sentence_pools
from core.synth.voices import pick_voices, synthesize


@dataclass
class Meeting:
    """One synthetic meeting in memory. sources: (speakers, samples) float32 reverberant images."""

    uri: str
    labels: list[str]
    sources: np.ndarray
    noise: np.ndarray
    mixture: np.ndarray
    segments: dict[str, list[tuple[float, float]]]
    meta: dict

    @property
    def duration(self) -> float:
        return self.mixture.shape[0] / SAMPLE_RATE

    def annotation(self):
        """pyannote Annotation of the speaker turns."""
        from pyannote.core import Annotation, Segment

        annotation = Annotation(uri=self.uri)
        for label, segs in self.segments.items():
            for start, end in segs:
                annotation[Segment(start, end), annotation.new_track(Segment(start, end))] = label
        return annotation


def babble_maker(engine_names: tuple[str, ...], cache_dir: Path | None):
    """babble(rng, num_samples): 3-5 distant talkers chatting continuously in a large room
    (espeak voices when installed: the cheapest engine), for core.synth.acoustics.noise_mix."""
    from scipy.signal import fftconvolve

    names = ("espeak",) if "espeak" in engine_names or not engine_names else engine_names[:1]

    def babble(rng: np.random.Generator, num_samples: int) -> np.ndarray:
        english, _ = sentence_pools()
        talkers = pick_voices(rng, int(rng.integers(3, 6)), real=False, engine_names=names)
        out = np.zeros(num_samples)
        for voice in talkers:
            t = int(rng.uniform(0, 2) * SAMPLE_RATE)
            while t < num_samples:
                wav = synthesize(voice, english[int(rng.integers(len(english)))], cache_dir)[: num_samples - t]
                out[t:t + len(wav)] += wav / max(float(np.sqrt(np.mean(wav ** 2))), 1e-6) * 10 ** (rng.uniform(-6, 0) / 20)
                t += len(wav) + int(rng.uniform(0.1, 1.0) * SAMPLE_RATE)
        return fftconvolve(out, room_impulse_response(rng, 0.9, -6.0))[:num_samples]

    return babble


def make_meeting(uri: str, duration: float, num_speakers: int, rng: np.random.Generator,
                 config: ConversationConfig | None = None, reverb: bool = True, noise: bool = True,
                 cache_dir: Path | None = None, real_voices: bool = True, engine_names: tuple[str, ...] = ("espeak",),
                 voice_set: str = "all", acoustics: AcousticsConfig | str | None = None,
                 voices: list[Voice] | None = None) -> Meeting:
    """Synthesise one meeting (see the module docstring and core.synth.acoustics). `voices`: the
    speakers to use (a series of meetings of the same people); by default `num_speakers` are drawn."""
    from scipy.signal import fftconvolve

    cfg = config or ConversationConfig()
    ac = with_defaults(acoustics)
    sr = SAMPLE_RATE
    total = int(round(duration * sr))
    if voices is None:
        voices = pick_voices(rng, num_speakers, real=real_voices, engine_names=engine_names, voice_set=voice_set)
    num_speakers = len(voices)
    labels = [f"spk{k}" for k in range(num_speakers)]
    requested = num_speakers
    placed = plan_conversation(rng, voices, duration, cfg, cache_dir)

    room = draw_room(rng, num_speakers, ac, reverb)
    gains_db = rng.uniform(-ac.level_range_db, ac.level_range_db, size=num_speakers) + room.gains_db
    snr_db = float(rng.uniform(*ac.snr_db))
    if noise:
        noise_wave, noise_kinds = noise_mix(rng, total, ac, babble_maker(engine_names, cache_dir))
    else:
        noise_wave, noise_kinds = np.zeros(total), []
    channel = draw_channel(rng, ac)

    sources = np.zeros((num_speakers, total), dtype=np.float64)
    raw_segments: dict[int, list[tuple[float, float]]] = {k: [] for k in range(num_speakers)}
    for item in placed:
        k = item.speaker
        wav = item.waveform.astype(np.float64) * cfg.speech_rms * 10 ** (gains_db[k] / 20)
        offset = item.start / sr
        for start, end in activity_segments(item.waveform):
            raw_segments[k].append((offset + start, min(offset + end, duration)))
        if room.irs is not None:
            wav = fftconvolve(wav, room.irs[k])  # the tail may run past the utterance
        end = min(total, item.start + len(wav))
        sources[k, item.start:end] += wav[: end - item.start]

    # a speaker who never got a word in (very short meetings) is left out; labels stay spk0..N-1
    keep = [k for k in range(num_speakers) if raw_segments[k]]
    sources = np.stack([apply_linear_channel(sources[k], channel) for k in keep]) if keep else sources[:0]
    voices, gains_db = [voices[k] for k in keep], gains_db[keep]
    speaker_room = {key: [value[k] for k in keep] for key, value in room.meta.items() if isinstance(value, list)
                    and key != "room_m"}
    raw_segments = {j: raw_segments[k] for j, k in enumerate(keep)}
    num_speakers, labels = len(keep), labels[: len(keep)]

    speech = sources.sum(axis=0)
    active = np.zeros(total, dtype=bool)
    for k in range(num_speakers):
        for start, end in raw_segments[k]:
            active[int(start * sr):int(end * sr)] = True
    speech_power = float(np.mean(speech[active] ** 2)) if active.any() else cfg.speech_rms ** 2
    noise_wave = apply_linear_channel(noise_wave, channel)
    noise_power = float(np.mean(noise_wave ** 2))
    if noise_power > 0:
        noise_wave = noise_wave * np.sqrt(speech_power / 10 ** (snr_db / 10) / noise_power)
    mixture = speech + noise_wave
    if channel["codec"] is not None:  # what the codec changes is part of the noise
        noise_wave = noise_wave + (apply_codec(mixture, channel["codec"]) - mixture)
        mixture = speech + noise_wave
    peak = float(np.max(np.abs(mixture))) if total else 0.0
    scale = 0.9 / peak if peak > 0.9 else 1.0  # no clipping: scale everything alike
    sources32 = (sources * scale).astype(np.float32)
    noise32 = (noise_wave * scale).astype(np.float32)
    mixture32 = (sources32.astype(np.float64).sum(axis=0) + noise32).astype(np.float32)

    segments = {labels[k]: merge_segments(raw_segments[k]) for k in range(num_speakers)}
    meta = {
        "uri": uri, "duration": duration, "sample_rate": sr, "requested_speakers": requested,
        "engines": list(engine_names), "voice_set": voice_set,
        "speakers": {labels[k]: {"voice": asdict(voices[k]), "voice_name": voices[k].name,
                                 "gain_db": round(float(gains_db[k]), 2),
                                 **{key: value[k] for key, value in speaker_room.items()}}
                     for k in range(num_speakers)},
        **{key: value for key, value in room.meta.items() if key not in speaker_room},
        "noise": noise, "noise_kinds": noise_kinds, "snr_db": round(snr_db, 2) if noise else None,
        "channel": channel, "scale": scale,
        "utterances": len(placed), "backchannels": sum(p.backchannel for p in placed),
    }
    meta.update(speech_statistics(segments, duration))
    return Meeting(uri, labels, sources32, noise32, mixture32, segments, meta)




def speech_statistics(segments: dict[str, list[tuple[float, float]]], duration: float,
                      resolution: float = 0.01) -> dict[str, float]:
    """Speech time, overlapped time (>= 2 speakers) and overlap ratio (overlapped / speech)."""
    n = int(np.ceil(duration / resolution)) + 1
    count = np.zeros(n, dtype=np.int32)
    for segs in segments.values():
        for start, end in segs:
            count[int(round(start / resolution)):int(round(end / resolution))] += 1
    speech = float((count >= 1).sum() * resolution)
    overlap = float((count >= 2).sum() * resolution)
    return {"speech_time": round(speech, 3), "overlap_time": round(overlap, 3),
            "overlap_ratio": round(overlap / speech, 4) if speech > 0 else 0.0,
            "speech_ratio": round(speech / duration, 4) if duration > 0 else 0.0}

