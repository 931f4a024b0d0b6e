"""Argument types shared by the subcommands (argparse turns their errors into a one-line usage error)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


MODEL_HELP = ("a model folder, 'default' (the shipped model), a pyannote.audio ToTaToNet checkpoint, or a Hugging Face "
              "Hub id org/name[@revision] (token: HF_TOKEN or `hf auth login`)")
