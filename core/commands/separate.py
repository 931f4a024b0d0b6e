"""`pixit separate`: diarize + separate recordings into DIR/<uri>.rttm, DIR/<uri>/<speaker>.wav and
DIR/<uri>.json.

AUDIO may be files, folders (their audio files, not recursive) or .txt lists (one path per line,
relative to the list, '#' comments). A recording whose outputs already exist (DIR/<uri>.json is
written last) is skipped, so an interrupted batch resumes where it stopped (--overwrite redoes
them).

Several workers: the recordings are sharded over worker processes, recording i to worker
i mod N of the full (sorted, de-duplicated) list, so every recording has exactly one worker whatever
was already done, and each worker skips its own finished ones. `--devices N` starts N local workers
(one per GPU: all visible GPUs by default with --device auto/cuda; or N CPU workers sharing the
cores); `--num-nodes M` with NODE_RANK=0..M-1 on each machine (Lightning's convention, as for
`pixit train`) makes the shards global. Under torchrun or srun each launched process is one worker,
its rank read from the launcher's environment (Lightning's cluster environments).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from core.annotation import uri_for
from core.commands._args import MODEL_HELP, PARAMS_HELP, load_pipeline_params, positive_int
from core.errors import PixitError

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files, folders of audio files, or .txt lists of paths")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--model", default="default", metavar="M", help=f"{MODEL_HELP} (default: default)")
    parser.add_argument("--params", metavar="P", help=f"{PARAMS_HELP} (default: the model's params.json)")
    parser.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-size", type=int, metavar="N", help="windows per forward pass (default: the params' batch_size: 8 for the shipped model, 32 without a params.json)")
    parser.add_argument("--devices", type=positive_int, metavar="N",
                        help="worker processes on this machine (default: every visible GPU, else 1)")
    parser.add_argument("--num-nodes", type=positive_int, default=1, metavar="M",
                        help="machines sharing the recordings; run the same command on each with NODE_RANK=0..M-1")
    parser.add_argument("--shard", type=_shard_arg, help=argparse.SUPPRESS)  # K/N: set for the workers
    parser.add_argument("--num-speakers", type=int, metavar="N", help="exact number of speakers")
    parser.add_argument("--min-speakers", type=int, metavar="N", help="at least N speakers")
    parser.add_argument("--max-speakers", type=int, metavar="N", help="at most N speakers")
    parser.add_argument("--embedding", metavar="NAME", help="speaker embedding: resemblyzer, speechbrain-ecapa[:DIR], mfcc")
    parser.add_argument("--vad", choices=("none", "silero"),
                        help="voice activity detection that gives missed speech to the likeliest speaker "
                             "(default: from params; silero needs the silero-vad package)")
    parser.add_argument("--speakers", metavar="PROFILES",
                        help="known speakers (a speakers.json that fine-tuning writes into its model folder): "
                             "the output names them; 'none' for anonymous speakers (default: the model's own)")
    parser.add_argument("--no-sources", action="store_true", help="diarization only: no per-speaker WAV files")
    parser.add_argument("--overwrite", action="store_true", help="process files whose outputs already exist")
    parser.add_argument("--quiet", action="store_true", help="only the per-file result lines")


def collect_audio(items: list[str]) -> list[Path]:
    """Expand files / folders / .txt lists into audio paths (order kept, duplicates dropped)."""
    out: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise PixitError(f"{path}: no audio files in this folder")
            out.extend(found)
        elif path.suffix.lower() == ".txt":
            if not path.is_file():
                raise PixitError(f"{path}: no such list file")
            for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                entry = Path(line).expanduser()
                entry = entry if entry.is_absolute() else path.parent / entry
                if not entry.is_file():
                    raise PixitError(f"{path.name} line {lineno}: no such audio file {line}")
                out.append(entry)
        elif path.is_file():
            out.append(path)
        else:
            raise PixitError(f"{item}: no such file or folder")
    seen, unique = set(), []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    uris: dict[str, Path] = {}
    for p in unique:
        if uri_for(p.stem) in uris:
            raise PixitError(f"two recordings would write the same outputs: {uris[uri_for(p.stem)]} and {p} (rename one)")
        uris[uri_for(p.stem)] = p
    return unique


def is_done(out_dir: Path, uri: str, sources: bool) -> bool:
    if not ((out_dir / f"{uri}.json").is_file() and (out_dir / f"{uri}.rttm").is_file()):
        return False
    if sources:
        import json

        try:
            summary = json.loads((out_dir / f"{uri}.json").read_text(encoding="utf-8"))
            return all((out_dir / s["wav"]).is_file() for s in summary.get("speakers", [])) and all("wav" in s for s in summary.get("speakers", []))
        except (OSError, ValueError, KeyError, TypeError):
            return False
    return True


def _visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def _shard_arg(text: str) -> tuple[int, int]:
    try:
        rank, world = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N, got {text!r}") from None
    if not 0 <= rank < world:
        raise argparse.ArgumentTypeError(f"expected 0 <= K < N, got {text!r}")
    return rank, world


def launched_shard() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when torchrun or srun started this process as one of several."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    for environment in (TorchElasticEnvironment, SLURMEnvironment):
        if environment.detect():
            env = environment()
            if env.world_size() > 1:
                return env.global_rank(), env.world_size(), env.local_rank()
    return None


def _start_workers(args, devices: int, gpus: bool) -> int:
    """Run `devices` local workers (this command again, each with its --shard and device) and wait."""
    from lightning.fabric.plugins.environments import LightningEnvironment

    node = LightningEnvironment().node_rank()
    if not 0 <= node < args.num_nodes:
        raise PixitError(f"NODE_RANK {node} is not below --num-nodes {args.num_nodes}")
    world = devices * args.num_nodes
    threads = max(1, (os.cpu_count() or 1) // devices)
    print(f"{world} workers ({devices} on this machine{f', node {node} of {args.num_nodes}' if args.num_nodes > 1 else ''}"
          f", {'one GPU' if gpus else f'{threads} CPU thread(s)'} each)", flush=True)
    argv = list(args.argv)  # this command as typed (core.cli keeps it)
    procs = []
    for local in range(devices):
        rank = node * devices + local
        device = f"cuda:{local}" if gpus else "cpu"
        cmd = [sys.executable, "-m", "core.cli", *argv, "--shard", f"{rank}/{world}", "--device", device]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if not gpus else None
        procs.append(subprocess.Popen(cmd, env=env))
    try:
        codes = [p.wait() for p in procs]
    finally:
        for p in procs:  # Ctrl+C or a failure here: no orphaned workers
            if p.poll() is None:
                p.terminate()
    return max(codes) if codes else 0


def run(args) -> int:
    from core.pipeline import PipelineParams

    if args.num_speakers is not None and (args.min_speakers is not None or args.max_speakers is not None):
        raise PixitError("use either --num-speakers or --min-speakers/--max-speakers, not both")
    from core.clustering import check_speaker_bounds

    check_speaker_bounds(args.num_speakers, args.min_speakers, args.max_speakers)
    if args.batch_size is not None and args.batch_size < 1:
        raise PixitError(f"--batch-size must be a positive integer, got {args.batch_size}")
    params = (load_pipeline_params(args.params, "separate", quiet=bool(args.shard)) if args.params
              else PipelineParams.for_model(args.model))
    if args.batch_size is not None:
        params.batch_size = args.batch_size
    if args.embedding:
        params.embedding = args.embedding
    if args.vad:
        params.vad = args.vad
    if params.vad == "silero":
        from core import vad

        if not vad.available():
            raise PixitError("--vad silero needs the silero-vad package (pip install silero-vad)")
    files = collect_audio(args.audio)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise PixitError(f"--out {out_dir} exists and is not a folder")
    launched = launched_shard()
    if args.shard:
        rank, world = args.shard
    elif launched:
        rank, world, local = launched
        if args.device in ("auto", "cuda") and _visible_gpus():
            args.device = f"cuda:{local % _visible_gpus()}"
    else:
        gpus = args.device in ("auto", "cuda") and _visible_gpus() > 0
        devices = args.devices or (min(_visible_gpus(), len(files)) if gpus else 1)
        if gpus and devices > _visible_gpus():
            raise PixitError(f"--devices {devices}: only {_visible_gpus()} GPU(s) visible")
        if devices > 1 and args.device.startswith("cuda:"):
            raise PixitError("--devices starts one worker per GPU: use --device cuda (or auto), not one GPU")
        if devices * args.num_nodes > 1:
            from core.models import resolve_model

            resolve_model(args.model)  # a hub model is downloaded once, here, not by every worker at once
            return _start_workers(args, devices, gpus)
        rank, world = 0, 1
    prefix = f"worker {rank}/{world}: " if world > 1 else ""
    mine = files[rank::world]
    sources = not args.no_sources
    todo = [p for p in mine if args.overwrite or not is_done(out_dir, uri_for(p.stem), sources)]
    skipped = len(mine) - len(todo)
    if skipped:
        print(f"{prefix}skipping {skipped} of {len(mine)} recordings (outputs exist; --overwrite to redo)", flush=True)
    if not todo:
        return 0

    from core.pipeline import Pipeline

    speakers = "auto" if args.speakers is None else None if args.speakers == "none" else args.speakers
    pipeline = Pipeline(args.model, params, device=args.device, speakers=speakers)
    if pipeline.speakers is not None and not args.quiet:
        print(f"{prefix}known speakers: {', '.join(pipeline.speakers.names)}", flush=True)
    failures = 0
    start_all = time.perf_counter()
    for i, path in enumerate(todo, 1):
        head = f"{prefix}[{i}/{len(todo)}] {uri_for(path.stem)}"
        last = [-1.0]

        def progress(fraction, message, head=head, last=last):
            if not args.quiet and fraction - last[0] >= 0.1:
                last[0] = fraction
                print(f"{head}: {fraction:4.0%} {message}", flush=True)

        try:
            result = pipeline(path, uri=uri_for(path.stem), num_speakers=args.num_speakers, min_speakers=args.min_speakers,
                              max_speakers=args.max_speakers, progress=progress, return_sources=sources)
            result.save(out_dir)
        except PixitError as exc:
            if len(todo) == 1:
                raise
            failures += 1
            print(f"pixit separate: error: {path.name}: {exc}", file=sys.stderr, flush=True)
            continue
        total = result.timings.get("total", 0.0)
        rtf = total / result.duration if result.duration else 0.0
        print(f"{head}: {len(result.labels)} speakers, {result.duration:.1f} s in {total:.1f} s (RTF {rtf:.3f})"
              + "".join(f" | warning: {w}" for w in result.warnings), flush=True)
    elapsed = time.perf_counter() - start_all
    print(f"{prefix}done: {len(todo) - failures} of {len(todo)} recordings in {elapsed:.1f} s -> {out_dir}", flush=True)
    return 2 if failures else 0
