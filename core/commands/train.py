"""`pixit train`: train or fine-tune a ToTaToNet with PixIT -> RUN/model/ + RUN/metrics.csv."""

from __future__ import annotations

import argparse
import sys
import time

from core.commands._args import MODEL_HELP, bounded_float, positive_int

MASKERS = ("dprnn", "convtasnet", "sepformer", "spgm")


def _devices(text: str):
    """'auto', an integer count, or a comma-separated list of device indices ('0,2')."""
    if text == "auto":
        return text
    try:
        if "," in text:
            return [int(x) for x in text.split(",") if x.strip()]
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto', a number or a list like 0,1; got {text!r}") from None
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError("expected a positive number of devices (or -1 for all)")
    return value



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", required=True, metavar="MANIFEST",
                        help="training recordings: CSV audio,rttm[,uem][,sources] or a folder of name.wav + name.rttm")
    parser.add_argument("--dev", metavar="MANIFEST", help="validation recordings (default: held out from --train)")
    parser.add_argument("--out", required=True, metavar="RUN", help="run folder: RUN/model, RUN/metrics.csv, RUN/train.json")
    parser.add_argument("--init", metavar="M", help=f"the model to fine-tune (default: train from scratch): {MODEL_HELP}")
    parser.add_argument("--resume", action="store_true",
                        help="go on with RUN from RUN/checkpoint (weights, optimizer, LR schedule, step count; "
                             "written at every validation and when stopped by a signal); --max-steps is the total")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=positive_int, metavar="N", help="number of optimiser steps")
    length.add_argument("--epochs", type=positive_int, metavar="N", help="number of epochs (default 10)")
    parser.add_argument("--steps-per-epoch", type=positive_int, metavar="N", help="default: about one pass over the annotated audio")
    parser.add_argument("--lambda", dest="lambda_", type=bounded_float(0, 1), default=0.5, metavar="LAMBDA",
                        help="weight of the diarization (PIT) losses; 1 = diarization only (default 0.5)")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="chunk pairs per batch (default 8)")
    parser.add_argument("--chunk-duration", type=bounded_float(0, 60, low_open=True), default=5.0, metavar="S",
                        help="chunk length in seconds, at most 60 (default 5)")
    parser.add_argument("--lr", type=bounded_float(0, 1, low_open=True), default=3e-4, metavar="LR", help="learning rate, at most 1 (default 3e-4)")
    parser.add_argument("--ssl-lr", type=bounded_float(0, 1), default=1e-5, metavar="LR", help="learning rate of the SSL front end (default 1e-5)")
    parser.add_argument("--sup-weight", type=bounded_float(0, 100), default=0.0, metavar="W",
                        help="weight of a supervised SI-SDR loss on ground-truth sources (synthetic data; default 0)")
    parser.add_argument("--val-pairs", type=positive_int, default=64, metavar="N", help="fixed validation pairs (default 64)")
    parser.add_argument("--val-every", type=positive_int, metavar="N", help="steps between validations (default: once per epoch)")
    parser.add_argument("--num-workers", type=int, default=0, metavar="N", help="data-loading worker processes (default 0)")
    parser.add_argument("--accelerator", default="auto", metavar="A", help="auto | cpu | gpu | ... (default auto: GPU when there is one)")
    parser.add_argument("--devices", type=_devices, default=1, metavar="N",
                        help="number of devices, a list (0,1) or auto (= all; several devices train with DDP; default 1)")
    parser.add_argument("--num-nodes", type=positive_int, default=1, metavar="N", help="number of machines (default 1)")
    parser.add_argument("--strategy", default="auto", metavar="S", help="Lightning strategy: auto | ddp | ... (default auto)")
    parser.add_argument("--precision", metavar="P", help="Lightning precision, e.g. bf16-mixed (default 32-true)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--config", metavar="JSON", help="model config (ToTaToNetConfig as JSON) for training from scratch")
    parser.add_argument("--masker", choices=MASKERS, help="masker of a model trained from scratch (default dprnn)")
    parser.add_argument("--quiet", action="store_true", help="print only validations and the result")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from core.errors import PixitError

    if args.resume and (args.init or args.config or args.masker):
        raise PixitError("--resume goes on with the run's own model: do not combine it with --init, --config or --masker")
    if args.init and (args.config or args.masker):
        raise PixitError("--init fine-tunes an existing model: do not combine it with --config or --masker")
    model_config = None
    if args.config or args.masker:
        from core.models.totatonet import ToTaToNetConfig

        data = {}
        if args.config:
            path = Path(args.config)
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise PixitError(f"{path}: cannot read the model config ({str(exc).splitlines()[0]})") from None
        if args.masker:
            if isinstance(data, dict) and data.get("masker") not in (None, args.masker):
                data["masker_params"] = {}  # parameters of another masker would not fit
            data = {**data, "masker": args.masker} if isinstance(data, dict) else data
        model_config = ToTaToNetConfig.from_dict(data)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise PixitError(f"{out}: exists and is not a folder")

    from core.training import TrainConfig, train

    config = TrainConfig(
        max_steps=args.max_steps, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size, chunk_duration=args.chunk_duration, lambda_=args.lambda_, lr=args.lr,
        ssl_lr=args.ssl_lr, sup_weight=args.sup_weight, seed=args.seed, num_workers=args.num_workers,
        val_pairs=args.val_pairs, val_every=args.val_every, accelerator=args.accelerator, devices=args.devices,
        num_nodes=args.num_nodes, strategy=args.strategy, precision=args.precision,
    )
    last = {"time": 0.0, "fraction": -1.0}

    def progress(fraction: float, message: str) -> None:
        is_step = message.startswith("step ")
        now = time.monotonic()
        if is_step and (args.quiet or (now - last["time"] < 5.0 and fraction - last["fraction"] < 0.01)):
            return
        if args.quiet and not message.startswith(("validation at", "done")):
            return
        last["time"], last["fraction"] = now, fraction
        print(f"[{100 * fraction:5.1f}%] {message}", flush=True)

    result = train(args.train, out, dev_manifest=args.dev, init=args.init, config=config,
                   model_config=model_config, progress=progress, resume=args.resume)
    print(f"model: {result.model_dir}")
    print(f"metrics: {result.metrics_path}")
    sys.stdout.flush()
    return 0
