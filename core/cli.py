"""The `pixit` command line.

Each subcommand lives in `core/commands/<name>.py` with `add_arguments(parser)` and `run(args)`,
imported only when used so that `pixit --help` stays fast. A PixitError (a user mistake) is printed
as one line, exit status 2; a Failed run (e.g. a training whose loss turned NaN) one line, exit
status 1; nothing prints a traceback for a user mistake.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "separate": "diarize + separate recordings into RTTM and one WAV per speaker",
    "train": "train or fine-tune a model with PixIT",
    "evaluate": "DER (and its parts) of hypothesis RTTMs against references",
    "tune": "tune the pipeline thresholds on a dev set",
    "synth": "generate synthetic meetings with ground-truth sources",
    "prune": "structured pruning of the SSL front end",
    "bench": "real-time factor and peak memory of `separate`",
    "export": "write a model as a pyannote.audio checkpoint (or as a model folder)",
    "push": "upload a model to the Hugging Face Hub, with a generated model card",
    "app": "start the Gradio workbench",
}


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line too (argparse would print the whole usage first); --help has the rest."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="pixit", description="PixIT Workbench: joint diarization + separation")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            _module(name).add_arguments(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.errors import Failed, Interrupted, PixitError

    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(only=wanted or "")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed: main() returns codes, never exits
        return int(exc.code or 0)
    args.argv = list(argv)  # e.g. for commands that start worker copies of themselves
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(_module(args.command).run(args) or 0)
    except Interrupted as exc:  # by a signal: the conventional 128 + signal number
        print(f"pixit {args.command}: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except Failed as exc:
        print(f"pixit {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except PixitError as exc:
        print(f"pixit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pixit {args.command}: interrupted", file=sys.stderr)
        return 130


def _module(name: str):
    return importlib.import_module(f"core.commands.{name}")


if __name__ == "__main__":
    sys.exit(main())
