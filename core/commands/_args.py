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
