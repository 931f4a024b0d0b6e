"""`pixit bench`: real-time factor and peak memory of `pixit separate` on generated meetings.

For each --duration a synthetic meeting (harmonic "voices" taking turns, some overlap) is written
to a temporary folder and `pixit separate` runs on it in a fresh subprocess; the peak resident
memory of that process (the kernel's max RSS) and the
pipeline's own timings (from the output JSON) are reported. The peak is that of the child process
alone (os.wait4), i.e. everything `separate` needs: interpreter, torch, model, audio, buffers. A
5-second meeting is run first: its peak is the baseline (interpreter, torch, model, embedder), and
each duration's peak is also reported above it. Memory should grow linearly and slowly with the
duration: about 4 + 4 x speakers bytes per sample, plus 12 for the source cache of recordings up
to `source_cache_minutes` (see core.pipeline).
`--compare pyannote` runs pyannote.audio's SpeechSeparation beside it instead (core.commands.bench_pyannote).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from core.commands._args import MODEL_HELP, bounded_float, positive_int
from core.errors import PixitError

SR = 16000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=bounded_float(0, 24 * 3600, low_open=True), nargs="+", default=[600.0], metavar="S", help="meeting duration(s) in seconds (default 600)")
    parser.add_argument("--model", default="default", metavar="M", help=f"{MODEL_HELP} (default: default)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("--batch-size", type=int, metavar="N", help="windows per forward pass")
    parser.add_argument("--embedding", metavar="NAME", help="speaker embedding (default: from the params, resemblyzer)")
    parser.add_argument("--params", metavar="P.json", help="pipeline parameters")
    parser.add_argument("--speakers", type=int, default=4, metavar="N", help="speakers in the generated meeting (default 4)")
    parser.add_argument("--num-speakers", type=int, metavar="N", help="pass --num-speakers N to separate (e.g. to force N output tracks with an untrained model)")
    parser.add_argument("--no-sources", action="store_true", help="diarization only")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--keep", metavar="DIR", help="keep the generated audio and outputs in DIR")
    parser.add_argument("--compare", choices=("pyannote",),
                        help="also run pyannote.audio's SpeechSeparation (in .venv-pyannote) on the same meeting, "
                             "weights, embedding and parameters, and print both and their ratios")
    parser.add_argument("--threads", type=positive_int, default=1, metavar="N",
                        help="CPU threads of each measured process with --compare (default 1)")
    parser.add_argument("--pyannote-up-to", type=bounded_float(0, 24 * 3600, low_open=True), default=1200.0, metavar="S",
                        help="with --compare: run pyannote only on meetings of at most S seconds (its memory grows with the "
                             "length of the meeting) and extrapolate its time and memory to the longer ones from "
                             "a straight-line fit (default 1200)")


def generate_meeting(duration: float, num_speakers: int = 4, seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """A cheap synthetic meeting (float32, 16 kHz) and its turns (start, end, speaker): harmonic voices
    with own f0 and tilt, turns of 0.5-4 s, some overlap and short pauses; built block by block (no
    duration x speakers array)."""
    rng = np.random.default_rng(seed)
    n = int(duration * SR)
    out = np.zeros(n, np.float32)
    f0s = rng.uniform(90, 260, num_speakers)
    tilts = rng.uniform(0.6, 1.6, num_speakers)
    t = 0.0
    last = -1
    turns = []
    while t < duration:
        spk = int(rng.choice([s for s in range(num_speakers) if s != last])) if num_speakers > 1 else 0
        length = rng.uniform(0.5, 4.0)
        a, b = int(t * SR), min(n, int((t + length) * SR))
        if b <= a:
            break
        tt = np.arange(b - a, dtype=np.float32) / SR
        phase = 2 * np.pi * f0s[spk] * tt * (1 + 0.02 * np.sin(2 * np.pi * 4 * tt))
        wave = sum((1.0 / h ** tilts[spk]) * np.sin(h * phase) for h in range(1, 7))
        env = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(3, 5) * tt)
        out[a:b] += (0.05 * wave * env).astype(np.float32)
        turns.append((a / SR, b / SR, f"spk{spk}"))
        last = spk
        t += length + (rng.uniform(-0.5, 0.0) if rng.random() < 0.25 else rng.uniform(0.0, 0.6))
    out += (1e-3 * rng.standard_normal(n)).astype(np.float32)
    return out, turns


def run_measured(cmd: list[str], env: dict | None = None, cwd: str | Path | None = None) -> dict:
    """Run a command as a child process; its wall time, CPU time (user + system) and peak resident
    memory (os.wait4 gives the usage of exactly this child), exit code and stderr."""
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        stderr = err.read()
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,  # kB on Linux
            "returncode": os.waitstatus_to_exitcode(status), "stderr": stderr}


def last_line(stderr: str) -> str:
    return (stderr.strip().splitlines() or ["unknown error"])[-1]


def separate_command(audio: Path, out_dir: Path, args) -> list[str]:
    cmd = [sys.executable, "-m", "core.cli", "separate", str(audio), "--out", str(out_dir), "--model", str(args.model),
           "--device", args.device, "--overwrite", "--quiet"]
    for flag, value in (("--batch-size", args.batch_size), ("--embedding", args.embedding), ("--params", args.params),
                        ("--num-speakers", args.num_speakers)):
        if value is not None:
            cmd += [flag, str(value)]
    if args.no_sources:
        cmd.append("--no-sources")
    return cmd


def measure(audio: Path, out_dir: Path, args, env: dict | None = None) -> dict:
    """Run `pixit separate` on one file in a subprocess; wall and CPU time, peak RSS, the JSON timings."""
    result = run_measured(separate_command(audio, out_dir, args), env=env)
    if result["returncode"] != 0:
        raise PixitError(f"pixit separate failed on the benchmark meeting: {last_line(result['stderr'])}")
    summary = json.loads((out_dir / f"{audio.stem}.json").read_text())
    return {**result, "timings": summary["timings"], "speakers": summary["num_speakers"]}


def run(args) -> int:
    if args.speakers < 1:
        raise PixitError("--speakers must be >= 1")
    from core.models import resolve_model

    resolve_model(args.model)  # a model that does not resolve fails here, in one line
    rows = []
    tmp_ctx = tempfile.TemporaryDirectory(prefix="pixit-bench-") if not args.keep else None
    base = Path(args.keep) if args.keep else Path(tmp_ctx.name)
    base.mkdir(parents=True, exist_ok=True)
    if args.compare == "pyannote":
        from core.commands.bench_pyannote import compare_pyannote

        try:
            rows = compare_pyannote(args, base)
        finally:
            if tmp_ctx is not None:
                tmp_ctx.cleanup()
        _write_json(args.json, rows)
        return 0
    from core.audio import save_audio

    def run_on(duration: float) -> tuple[Path, dict]:
        audio = base / f"bench_{int(duration)}s.wav"
        save_audio(audio, generate_meeting(duration, args.speakers)[0], SR)
        return audio, measure(audio, base / "out", args)

    try:
        baseline = run_on(5.0)[1]["peak_rss_mb"]
        print(f"baseline (5 s meeting: interpreter, torch, model, embedder): peak RSS {baseline:.0f} MB", flush=True)
        for duration in sorted(args.duration):
            audio, result = run_on(duration)
            total = result["timings"].get("total", result["wall"])
            row = {"duration": duration, "rtf": total / duration, "pipeline_s": total, "process_wall_s": result["wall"],
                   "peak_rss_mb": result["peak_rss_mb"], "above_baseline_mb": result["peak_rss_mb"] - baseline,
                   "baseline_mb": baseline, "speakers": result["speakers"], "timings": result["timings"]}
            rows.append(row)
            print(f"{duration / 60:6.1f} min: RTF {row['rtf']:.3f} ({total:.1f} s in the pipeline, {result['wall']:.1f} s process), "
                  f"peak RSS {row['peak_rss_mb']:.0f} MB ({row['above_baseline_mb']:.0f} MB above the baseline), "
                  f"{row['speakers']} speakers | "
                  + " ".join(f"{k}={v:.1f}s" for k, v in result["timings"].items() if k != "total"), flush=True)
            if audio.exists() and not args.keep:
                os.unlink(audio)
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) / ((b["duration"] - a["duration"]) / 60)
        print(f"memory growth: {slope:.1f} MB per minute of audio", flush=True)
    print("compare with pyannote.audio's SpeechSeparation on the same weights: pixit bench --compare pyannote", flush=True)
    _write_json(args.json, rows)
    return 0


def _write_json(path: str | None, rows: list[dict]) -> None:
    if path:
        from core.fileio import atomic_write_json

        atomic_write_json(path, rows)
