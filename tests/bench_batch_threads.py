"""Batch size and torch threads for inference, measured on this machine: wall and CPU time per 5 s
window of the model's forward (`ToTaToNet.analyse`, what `pixit separate` runs), for each batch size
and thread count, interleaved (every setting once per round, best of the rounds), so that a load
change on a shared machine hits all settings alike. Prints the table and the fastest setting.

    .venv/bin/python tests/bench_batch_threads.py [--model default] [--batches 1,4,8,16,32] [--rounds 3]
"""

import argparse
import os
import time

import torch

from core.models import load_model
from core.pipeline import PipelineParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--batches", default="1,4,8,16,32")
    parser.add_argument("--threads", default=",".join(str(t) for t in range(1, (os.cpu_count() or 1) + 1)))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]

    model = load_model(args.model).eval()
    params = PipelineParams.for_model(args.model)
    window = int(params.window * model.config.sample_rate)
    inputs = {b: torch.randn(b, window) for b in batches}
    best: dict[tuple[int, int], tuple[float, float]] = {}
    with torch.inference_mode():
        for t in threads:  # warm-up of every setting
            torch.set_num_threads(t)
            for b in batches:
                model.analyse(inputs[b])
        for _ in range(args.rounds):
            for t in threads:
                torch.set_num_threads(t)
                for b in batches:
                    w, c = time.perf_counter(), time.process_time()
                    model.analyse(inputs[b])
                    wall, cpu = (time.perf_counter() - w) / b, (time.process_time() - c) / b
                    old = best.get((t, b), (float("inf"), float("inf")))
                    best[(t, b)] = (min(old[0], wall), min(old[1], cpu))
    print(f"model {args.model}, {params.window:g} s windows, {os.cpu_count()} cores; per window, best of {args.rounds} rounds")
    print("threads batch  wall ms  CPU ms")
    for (t, b), (wall, cpu) in sorted(best.items()):
        print(f"{t:7d} {b:5d} {1e3 * wall:8.1f} {1e3 * cpu:7.1f}")
    fastest = min(best, key=lambda k: best[k][0])
    default = (max(threads), params.batch_size)
    print(f"fastest: {fastest[0]} thread(s), batch {fastest[1]}: {1e3 * best[fastest][0]:.1f} ms per window")
    if default in best:
        print(f"default (all {default[0]} threads, batch {default[1]} from params.json): {1e3 * best[default][0]:.1f} ms "
              f"per window ({best[default][0] / best[fastest][0]:.2f}x the fastest)")


if __name__ == "__main__":
    main()
