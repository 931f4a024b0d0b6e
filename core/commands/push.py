"""`pixit push MODEL org/name [--private]`: upload a model to the Hugging Face Hub with a generated
model card (README.md: architecture, training data, parent model, metrics, licence; see
core/models/sharing.py). The token is huggingface_hub's: HF_TOKEN, else the login stored by
`hf auth login`; there is deliberately no --token option (it would land in the shell history).
"""

from __future__ import annotations

import argparse

from core.commands._args import MODEL_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument("repo_id", metavar="ORG/NAME", help="the Hugging Face model repo to create or update")
    parser.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    parser.add_argument("--license", default="other", metavar="ID",
                        help="licence identifier for the model card, e.g. mit, cc-by-4.0 (default: other)")
    parser.add_argument("--parent", metavar="M", help="parent model named in the card (default: the training run's --init)")
    parser.add_argument("--with-pyannote", action="store_true",
                        help="also upload pytorch_model.bin (pixit export --format pyannote), so that pyannote.audio loads the repo too")
    parser.add_argument("--dry-run", metavar="DIR", help="write the files that would be uploaded into DIR instead")


def run(args: argparse.Namespace) -> int:
    from core.models.sharing import push_model, stage_model

    if args.dry_run:
        folder = stage_model(args.model, args.dry_run, args.repo_id, license=args.license, parent=args.parent,
                             with_pyannote=args.with_pyannote)
        print(f"wrote the files for {args.repo_id} into {folder} (nothing uploaded)")
        return 0
    url = push_model(args.model, args.repo_id, private=args.private, license=args.license, parent=args.parent,
                     with_pyannote=args.with_pyannote)
    print(f"pushed {args.model} to {args.repo_id}: {url}")
    return 0
