"""Model stage of `pixit separate`: decoding every window's sources with the transposed convolution
(what a model run whole does) against decoding only the sources the pipeline uses, with the
matrix-product decoder (ToTaToNet.analyse / decode). Same process, interleaved, one thread, CPU time.
Then the same two decoders where a long recording's separation chunks are run again while stitching.

    .venv/bin/python tests/bench_decode.py [--duration 120] [--model default] [--repeats 3]
"""

import argparse
import time

import numpy as np
import torch

from core.commands.bench import generate_meeting
from core.embeddings import get_encoder
from core.models import load_model
from core.pipeline import PipelineParams
from core.pipeline.windows import run_model


class WholeWithModule(torch.nn.Module):
    """The same network run whole: every source of every window through nn.ConvTranspose1d."""

    def __init__(self, net):
        super().__init__()
        self.net, self.frame_step, self.frame_size, self.config = net, net.frame_step, net.frame_size, net.config

    def forward(self, x):
        masked, acts = self.net.analyse(x)
        b, k = masked.shape[:2]
        flat = masked.reshape(b * k, *masked.shape[2:])
        return self.net.decoder(flat)[:, 0, :x.shape[-1]].reshape(b, k, -1), acts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = load_model(args.model).eval()
    params = PipelineParams.for_model(args.model)
    audio = generate_meeting(args.duration, 4)[0]
    encoder = get_encoder(params.embedding)
    times = {"whole, ConvTranspose1d": [], "used sources only, matmul decoder": []}
    for _ in range(args.repeats):
        for name, model in zip(times, (WholeWithModule(net), net)):
            start = time.process_time()
            run_model(model, audio, params, encoder=encoder)
            times[name].append(time.process_time() - start)
    report(times)
    # long recordings (above source_cache_minutes) keep no sources: the separation chunks are run again
    times = {"recomputed, ConvTranspose1d": [], "recomputed, matmul decoder": []}
    outputs = [run_model(m, audio, params, cache_sources=False) for m in (WholeWithModule(net), net)]
    for _ in range(args.repeats):
        for name, out in zip(times, outputs):
            start = time.process_time()
            for _m, _sources in out.iter_chunk_sources(np.ones(len(out.sep_chunks), bool)):
                pass
            times[name].append(time.process_time() - start)
    report(times)


def report(times: dict[str, list[float]]) -> None:
    base = min(next(iter(times.values())))
    for name, values in times.items():
        print(f"{name:36s} min {min(values):6.2f} s CPU  (median {np.median(values):.2f}), {base / min(values):.2f}x")


if __name__ == "__main__":
    main()
