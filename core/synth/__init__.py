"""Synthetic meetings with ground truth: per-speaker sources, mixture, noise, RTTM, UEM, manifest.

Why: tests, demos and the default model need multi-speaker recordings whose separated sources and
speaker turns are known exactly. The package, in the order a meeting is made:

| module | what |
|---|---|
| `engines/` | speech engines, one module each: espeak-ng, flite, festival, Piper, and the real recordings of assets/real |
| `voices.py` | pseudo-speakers (vocal-tract warp, pitch, tempo) from the engines' voices, train / held-out voice sets, the utterance cache |
| `text.py` | what they say |
| `conversation.py` | turn-taking: turns, interruptions, backchannels (~20 % overlapped speech) |
| `acoustics.py` | rooms (pyroomacoustics or statistical), levels, noise of several kinds, channel (telephone band, codecs) |
| `activity.py` | the energy VAD on dry speech that the RTTM comes from |
| `meeting.py` | one meeting in memory: mixture == sum(sources) + noise exactly |
| `corpus.py` | `make_corpus`: a folder of meetings with manifest.csv (what `pixit synth` writes) |
"""

from core.synth.activity import (MIN_GAP, SAMPLE_RATE, VAD_FRAME, VAD_THRESHOLD_DB, activity_segments,
                                 frame_activity, merge_segments)
from core.synth.acoustics import ACOUSTICS, AcousticsConfig
from core.synth.conversation import ConversationConfig
from core.synth.corpus import corpus_statistics, make_corpus, parse_speakers, validate_speakers, write_meeting
from core.synth.engines import engines
from core.synth.engines.espeak import available_voice_parts, espeak_available
from core.synth.engines.real import real_voice_clips
from core.synth.meeting import Meeting, make_meeting, speech_statistics
from core.synth.text import BACKCHANNELS, sentence_pools
from core.synth.voices import (VOICE_SETS, Voice, base_voices, default_cache_dir, max_speakers, parse_engines,
                               pick_voices, synthesize)

__all__ = ["ACOUSTICS", "AcousticsConfig", "BACKCHANNELS", "ConversationConfig", "MIN_GAP", "Meeting", "SAMPLE_RATE",
           "VAD_FRAME", "VAD_THRESHOLD_DB", "VOICE_SETS", "Voice", "activity_segments", "available_voice_parts",
           "base_voices", "corpus_statistics", "count_voices", "default_cache_dir", "engines", "espeak_available",
           "frame_activity", "make_corpus", "make_meeting", "max_speakers", "merge_segments", "parse_engines",
           "parse_speakers", "pick_voices", "real_voice_clips", "sentence_pools", "speech_statistics", "synthesize",
           "validate_speakers", "write_meeting"]


def count_voices() -> dict[str, int]:
    """Base voices per installed engine, and espeak-ng's languages and variants."""
    languages, variants = available_voice_parts()
    counts = {"languages": len(languages), "variants": len(variants)}
    for name, engine in engines().items():
        counts[f"{name}_voices"] = len(engine.voices())
    return counts
