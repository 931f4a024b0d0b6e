"""`pixit app`: start the Gradio workbench (listens on 127.0.0.1 unless --host says otherwise)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 = everyone)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--model", default="default", help="default model: a model folder or a shipped name")
    parser.add_argument("--workspace", default=None,
                        help="folder holding the per-session workspaces (default $PIXIT_WORKSPACE or "
                             "~/.cache/pixit-workbench)")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest accepted upload (default 200 MB)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--params", default=None,
                        help="pipeline parameters JSON (from `pixit tune`); default: the built-in ones")


def run(args: argparse.Namespace) -> int:
    from core.errors import PixitError

    if not 1 <= args.port <= 65535:
        raise PixitError(f"--port {args.port}: not a valid port")
    if args.max_upload_mb <= 0:
        raise PixitError("--max-upload-mb must be positive")
    from app.main import build_demo, launch
    from app.session import Settings
    from app.workspace import default_root

    root = Path(args.workspace).expanduser() if args.workspace else default_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PixitError(f"--workspace {root}: cannot create it ({exc.strerror})") from None
    params = None
    if args.params:
        from core.pipeline import PipelineParams

        params = PipelineParams.load(args.params).to_dict()
    from app.session import default_model_available

    if not default_model_available(args.model):
        print(f"warning: model '{args.model}' is not available yet; pick a model folder in the app", file=sys.stderr)
    settings = Settings(root=root, model=args.model, max_upload_mb=args.max_upload_mb, device=args.device,
                        host=args.host, params=params)
    demo = build_demo(settings)
    print(f"PixIT Workbench on http://{args.host}:{args.port}  (workspace: {root})")
    launch(demo, host=args.host, port=args.port)
    return 0
