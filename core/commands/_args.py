"""Argument types shared by the subcommands (argparse turns their errors into a one-line usage error)."""

from __future__ import annotations

import argparse
import math
from typing import Callable


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def bounded_float(low: float | None = None, high: float | None = None, *, low_open: bool = False,
                  high_open: bool = False) -> Callable[[str], float]:
    """An argparse type for a float option: a finite number within [low, high] (an end excluded when
    `*_open`). NaN, infinity and huge values are refused here, so no command ever computes with them
    (`--collar inf` once scored nothing and reported DER 0 %)."""
    left = "-inf" if low is None else f"{low:g}"
    right = "inf" if high is None else f"{high:g}"
    interval = f"{'(' if low_open or low is None else '['}{left}, {right}{')' if high_open or high is None else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text!r}") from None
        inside = math.isfinite(value) and (
            low is None or value > low or (value == low and not low_open)) and (
            high is None or value < high or (value == high and not high_open))
        if not inside:
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text!r}")
        return value

    parse.__name__ = "number"  # argparse names the type in some messages
    return parse


def float_list(low: float | None = None, high: float | None = None, **bounds: bool) -> Callable[[str], tuple[float, ...]]:
    """An argparse type for a comma-separated list of numbers, each checked like `bounded_float`."""
    item = bounded_float(low, high, **bounds)

    def parse(text: str) -> tuple[float, ...]:
        values = tuple(item(x.strip()) for x in text.split(",") if x.strip())
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
        return values

    parse.__name__ = "list of numbers"
    return parse


MODEL_HELP = ("a model folder, 'default' (the shipped model), a pyannote.audio ToTaToNet checkpoint, or a Hugging Face "
              "Hub id org/name[@revision] (token: HF_TOKEN or `hf auth login`)")
PARAMS_HELP = ("pipeline parameters: a params.json from `pixit tune`, a pyannote.audio pipeline config.yaml, or a "
               "Hugging Face Hub id of a repo holding either (pyannote/speech-separation-ami-1.0)")


def load_pipeline_params(source: str, command: str, quiet: bool = False):
    """PipelineParams for `--params`; what pyannote settings could not be mapped is said on stderr
    (unless `quiet`: a worker process of a command that said it already)."""
    import sys

    from core.pyannote_params import load_params

    params, notes = load_params(source)
    for note in notes if not quiet else ():
        print(f"pixit {command}: note: {note}", file=sys.stderr)
    return params
