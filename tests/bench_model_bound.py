"""How close the model stage of `pixit separate` is to what this CPU can compute (issue 16's bound).

Counts the model's multiply-accumulates (MACs) per 5 s window: convolutions and matrix products
with torch's FlopCounterMode, the LSTMs (which it does not see) from their shapes, captured by
hooks. Times the same forward (`ToTaToNet.analyse`, what inference runs) at the pipeline's batch
size, and a large float32 matrix product as what one core delivers at best. Prints MACs per second
of audio at the model's sliding step, the achieved rate, and the fraction of the matmul rate.

    OMP_NUM_THREADS=1 .venv/bin/python tests/bench_model_bound.py [--model default] [--threads 1]
"""

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from core.models import load_model
from core.pipeline import PipelineParams


def lstm_macs(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, list]:
    """MACs of every nn.LSTM in one forward (per step and direction: 4 gates x hidden x (input +
    hidden)), and each LSTM call as (module, input, MACs) to time it alone."""
    total, calls = 0, []

    def hook(module, inputs, _output):
        nonlocal total
        seq = inputs[0]
        steps = seq.shape[0] * seq.shape[1]  # batch x time, whichever is first
        per_step = 4 * module.hidden_size * (module.input_size + module.hidden_size)
        macs = steps * per_step * (2 if module.bidirectional else 1) * module.num_layers
        total += macs
        calls.append((module, seq.clone(), macs))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    try:
        with torch.inference_mode():
            model.analyse(x)
    finally:
        for h in handles:
            h.remove()
    return total, calls


def seconds_per_call(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model).eval()
    params = PipelineParams.for_model(args.model)
    sr = model.config.sample_rate
    batch = params.batch_size
    x = torch.randn(batch, int(params.window * sr))

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.analyse(x)
    other = counter.get_total_flops() / 2 / batch
    lstm, calls = lstm_macs(model, x)
    lstm /= batch
    macs = other + lstm
    module, seq, call_macs = calls[0]

    with torch.inference_mode():
        forward_s = seconds_per_call(lambda: model.analyse(x), args.repeats) / batch
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    matmul_s = seconds_per_call(lambda: a @ b, args.repeats)
    with torch.inference_mode():
        lstm_s = seconds_per_call(lambda: module(seq), args.repeats)
    peak = n ** 3 / matmul_s  # MACs per CPU second

    windows_per_s = 1.0 / params.step
    print(f"model {args.model}: {macs / 1e9:.3f} GMACs per {params.window:g} s window "
          f"(LSTMs {lstm / 1e9:.3f}, convolutions and matrix products {other / 1e9:.3f})")
    print(f"step {params.step:g} s: {windows_per_s:g} windows per second of audio -> "
          f"{macs * windows_per_s / 1e9:.3f} GMACs per second of audio")
    print(f"forward at batch {batch}: {1e3 * forward_s:.1f} ms CPU per window = {macs / forward_s / 1e9:.2f} GMAC/s")
    print(f"float32 matmul {n}x{n}, {args.threads} thread(s): {peak / 1e9:.2f} GMAC/s")
    print(f"one of the LSTMs alone, input {tuple(seq.shape)}: {call_macs / lstm_s / 1e9:.2f} GMAC/s "
          f"({100 * call_macs / lstm_s / peak:.0f} % of the matmul rate)")
    print(f"model stage at {100 * macs / forward_s / peak:.0f} % of the matmul rate; at that rate one second of audio "
          f"would need {1e3 * macs * windows_per_s / peak:.1f} ms CPU, it takes {1e3 * forward_s * windows_per_s:.1f} ms")


if __name__ == "__main__":
    main()
