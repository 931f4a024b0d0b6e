"""`pixit app`: start the Gradio workbench (listens on 127.0.0.1 unless --host says otherwise).

Login is off by default (the laptop case: only this machine can connect). For a shared server,
`--auth-file FILE` (lines `user:password`) or `--auth USER:PASS` turn on Gradio's own login page;
passwords are never printed or logged (and a password on the command line is visible to `ps` and
kept in shell history: prefer the file)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from core.commands._args import MODEL_HELP, PARAMS_HELP, bounded_float, load_pipeline_params, positive_int


def user_password(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user.strip() or not password:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD")
    return user.strip(), password


def read_auth_file(path: str) -> list[tuple[str, str]]:
    """Accounts from a file of `user:password` lines (blank lines and # comments skipped)."""
    from core.errors import PixitError

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PixitError(f"--auth-file {path}: cannot read it ({exc.strerror})") from None
    accounts = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            accounts.append(user_password(line.rstrip("\r\n")))
        except argparse.ArgumentTypeError:
            raise PixitError(f"--auth-file {path} line {n}: expected user:password") from None
    if not accounts:
        raise PixitError(f"--auth-file {path}: no user:password line")
    return accounts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 = everyone)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--model", default="default", help=f"default model: {MODEL_HELP}")
    parser.add_argument("--workspace", default=None,
                        help="folder holding the per-session workspaces (default $PIXIT_WORKSPACE or "
                             "~/.cache/pixit-workbench)")
    parser.add_argument("--max-upload-mb", type=bounded_float(0, 1e6, low_open=True), default=200.0, help="largest accepted upload (default 200 MB)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--params", default=None, help=f"{PARAMS_HELP} (default: the model's own)")
    parser.add_argument("--models", action="append", default=[], metavar="DIR",
                        help="a folder whose model subfolders users may pick in the app (repeatable); no other "
                             "server path can be named from the app")
    parser.add_argument("--auth-file", default=None, metavar="FILE",
                        help="turn on the login page: accounts from FILE, one user:password per line")
    parser.add_argument("--auth", action="append", default=[], type=user_password, metavar="USER:PASS",
                        help="turn on the login page with this account (repeatable; visible to ps: prefer --auth-file)")
    parser.add_argument("--max-retrain-steps", type=positive_int, default=1000,
                        help="most steps one 'Retrain' may run (default 1000): one session cannot hold the model "
                             "for longer")


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
        params = load_pipeline_params(args.params, "app").to_dict()
    from app.models import default_model_available

    for d in args.models:
        if not Path(d).expanduser().is_dir():
            raise PixitError(f"--models {d}: not a folder")
    auth = list(args.auth) + (read_auth_file(args.auth_file) if args.auth_file else [])
    if not default_model_available(args.model):
        print(f"warning: model '{args.model}' is not available yet; pick a model folder in the app", file=sys.stderr)
    if not auth and not _loopback(args.host):
        print(f"warning: --host {args.host} lets other machines connect and there is no login: anyone who can reach "
              "the port can use the app (add --auth-file FILE)", file=sys.stderr)
    settings = Settings(root=root, model=args.model, max_upload_mb=args.max_upload_mb, device=args.device,
                        host=args.host, params=params, max_retrain_steps=args.max_retrain_steps,
                        model_dirs=tuple(Path(d).expanduser() for d in args.models))
    demo = build_demo(settings)
    login = f", login: {len(auth)} account(s)" if auth else ""
    print(f"PixIT Workbench on http://{args.host}:{args.port}  (workspace: {root}{login})")
    launch(demo, host=args.host, port=args.port, auth=auth or None)
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
