"""`pixit synth`: write a corpus of synthetic meetings with ground-truth sources, RTTM and UEM."""

from __future__ import annotations

import argparse
import sys
import time

from core.commands._args import bounded_float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--num-meetings", required=True, metavar="N", help="number of meetings")
    parser.add_argument("--duration", required=True, type=bounded_float(0, 7200, low_open=True), metavar="S",
                        help="duration of each meeting in seconds, at most 7200")
    parser.add_argument("--speakers", default="2-3", metavar="MIN-MAX",
                        help="speakers per meeting, drawn uniformly in MIN..MAX (default 2-3; '3' = exactly 3)")
    parser.add_argument("--seed", default="0", metavar="S", help="random seed (same seed, same files; default 0)")
    parser.add_argument("--same-speakers", action="store_true",
                        help="a series: every meeting has the same people (with --speakers N), each in its own "
                             "conversation and room (e.g. to measure retraining on one meeting, tested on the next)")
    parser.add_argument("--prefix", default="meeting", help="recording names are PREFIX000, PREFIX001, ...")
    parser.add_argument("--no-reverb", action="store_true", help="dry speech (no room reverberation)")
    parser.add_argument("--no-noise", action="store_true", help="no background noise")
    parser.add_argument("--no-sources", action="store_true",
                        help="write only mixture, RTTM and UEM (no per-speaker sources, no noise file)")
    parser.add_argument("--no-real-voices", action="store_true",
                        help="no speaker of the real recordings in assets/real (by default about 3 %% of "
                             "the speakers come from them)")
    parser.add_argument("--engines", default="espeak", metavar="LIST",
                        help="speech engines to draw voices from, comma-separated: espeak, flite, festival, piper, "
                             "or auto (every installed one); default espeak")
    parser.add_argument("--voice-set", default="all", choices=("all", "train", "heldout"),
                        help="train: every voice but the held-out ones (Piper, and the ARCTIC speaker slt); "
                             "heldout: only those; default all")
    parser.add_argument("--acoustics", default="basic", choices=("basic", "room", "varied"),
                        help="basic: statistical rooms and coloured noise; room: a quiet simulated meeting room; "
                             "varied: simulated rooms with far-field talkers, noise of five kinds, microphone "
                             "colouration, telephone band and codecs")
    parser.add_argument("--pcm16", action="store_true", help="16-bit PCM WAV files (default: 32-bit float)")
    parser.add_argument("--cache", default="default", metavar="DIR",
                        help="utterance cache folder (default $PIXIT_SYNTH_CACHE or ~/.cache/pixit-synth)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the utterance cache")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _number(value: str, option: str, kind: type):
    from core.errors import PixitError

    try:
        return kind(value)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise PixitError(f"{option} must be {what}, got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    from core.synth import make_corpus, parse_speakers

    num_meetings = _number(args.num_meetings, "--num-meetings", int)
    seed = _number(args.seed, "--seed", int)
    speakers = parse_speakers(args.speakers)

    def progress(fraction: float, message: str) -> None:
        if not args.quiet:
            print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    manifest = make_corpus(
        args.out, num_meetings, args.duration, speakers=speakers, seed=seed, prefix=args.prefix,
        reverb=not args.no_reverb, noise=not args.no_noise, write_sources=not args.no_sources,
        pcm16=args.pcm16, real_voices=not args.no_real_voices, engines=args.engines,
        voice_set=args.voice_set, acoustics=args.acoustics,
        cache_dir=None if args.no_cache else args.cache, progress=progress, same_speakers=args.same_speakers,
    )
    import json

    stats = json.loads((manifest.parent / "stats.json").read_text())
    elapsed = time.perf_counter() - started
    print(f"{manifest}  ({num_meetings} meetings, {stats['total_duration']:.0f} s of audio, "
          f"overlap {100 * stats['overlap_ratio']:.1f}% of speech, {elapsed:.1f} s)")
    return 0
