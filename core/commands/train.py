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
    # defaults of None: fine-tuning (--init) and training from scratch have their own (core.finetune)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=positive_int, metavar="N",
                        help="number of optimiser steps (fine-tuning: 60)")
    length.add_argument("--epochs", type=positive_int, metavar="N", help="number of epochs (from scratch: 10)")
    parser.add_argument("--steps-per-epoch", type=positive_int, metavar="N", help="default: about one pass over the annotated audio")
    parser.add_argument("--lambda", dest="lambda_", type=bounded_float(0, 1), metavar="LAMBDA",
                        help="weight of the diarization (PIT) losses; 1 = diarization only (default 0.5)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N",
                        help="chunk pairs per batch (default 8; fine-tuning 4)")
    parser.add_argument("--chunk-duration", type=bounded_float(0, 60, low_open=True), metavar="S",
                        help="chunk length in seconds, at most 60 (default 5)")
    parser.add_argument("--lr", type=bounded_float(0, 1, low_open=True), metavar="LR",
                        help="learning rate, at most 1 (default 3e-4; fine-tuning 1e-4)")
    parser.add_argument("--ssl-lr", type=bounded_float(0, 1), default=1e-5, metavar="LR", help="learning rate of the SSL front end (default 1e-5)")
    parser.add_argument("--sup-weight", type=bounded_float(0, 100), default=0.0, metavar="W",
                        help="weight of a supervised SI-SDR loss on ground-truth sources (synthetic data; default 0)")
    parser.add_argument("--val-pairs", type=positive_int, metavar="N", help="fixed validation pairs (default 64; fine-tuning 16)")
    parser.add_argument("--val-every", type=positive_int, metavar="N",
                        help="steps between validations (default: once per epoch; fine-tuning 15)")
    parser.add_argument("--warmup-steps", type=int, metavar="N", help="linear learning-rate warm-up (fine-tuning: 5)")
    parser.add_argument("--update", choices=("all", "late", "diarization"),
                        help="which parts learn: all, late (the diarization head and the masker's last block and "
                             "outputs) or diarization (its head only); default all, fine-tuning late")
    parser.add_argument("--replay-fraction", type=bounded_float(0, 0.95), metavar="F",
                        help="fine-tuning: share of pairs replayed from synthetic meetings like the shipped model's "
                             "training data, made once per machine (default 0.5)")
    parser.add_argument("--regression", metavar="MANIFEST",
                        help="fine-tuning with --dev: recordings the new model must not be worse on (default: the "
                             "shipped demo meeting; 'none' for no regression set)")
    parser.add_argument("--retune", action="store_true",
                        help="fine-tuning: re-tune the binarisation threshold and the shortest pause on --train into "
                             "the new model's params.json (default: keep the model's; see the README)")
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

    given = {k: v for k, v in {
        "max_steps": args.max_steps, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size, "chunk_duration": args.chunk_duration, "lambda_": args.lambda_,
        "lr": args.lr, "val_pairs": args.val_pairs, "val_every": args.val_every, "warmup_steps": args.warmup_steps,
        "update": args.update, "replay_fraction": args.replay_fraction}.items() if v is not None}
    device = dict(ssl_lr=args.ssl_lr, sup_weight=args.sup_weight, seed=args.seed, num_workers=args.num_workers,
                  accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes,
                  strategy=args.strategy, precision=args.precision)
    fine_only = [k for k in ("replay_fraction",) if k in given] + (["retune"] if args.retune else []) + (["regression"] if args.regression else [])
    if fine_only and not args.init:
        raise PixitError(f"--{fine_only[0].replace('_', '-')} is for fine-tuning: give --init M")
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

    if args.init and not args.resume:
        return _finetune(args, out, given, device, progress)
    config = TrainConfig(**given, **device)
    result = train(args.train, out, dev_manifest=args.dev, init=args.init, config=config,
                   model_config=model_config, progress=progress, resume=args.resume)
    print(f"model: {result.model_dir}")
    print(f"metrics: {result.metrics_path}")
    sys.stdout.flush()
    return 0


def _finetune(args: argparse.Namespace, out, given: dict, device: dict, progress) -> int:
    """--init: core.finetune with its defaults (those of the app's Retrain button) and the options given;
    with --dev, the new model is compared with --init on it (and on the regression set)."""
    import dataclasses

    from core.adoption import SCORE_HEADERS, decide
    from core.data import read_manifest
    from core.finetune import FinetuneSettings, finetune

    mine = {f.name for f in dataclasses.fields(FinetuneSettings)}
    named = {"max_steps": "steps"}
    settings = FinetuneSettings(**{named.get(k, k): v for k, v in given.items() if named.get(k, k) in mine},
                                retune=args.retune)
    if "epochs" in given:
        settings.steps = None
    extra = {k: v for k, v in given.items() if named.get(k, k) not in mine}
    result = finetune(args.init, args.train, out, dev_data=args.dev, settings=settings, progress=progress,
                      **extra, **device)
    print(f"model: {result.model_dir}  ({result.steps} steps, best at step {result.best_step}, "
          f"{result.seconds:.0f} s{', pipeline settings re-tuned' if result.params else ''})")
    if args.dev:
        regression = None if args.regression is None else [] if args.regression == "none" else read_manifest(args.regression)
        decision = decide(args.init, result.model_dir, read_manifest(args.dev), regression,
                          current_name=f"--init {args.init}", new_name="fine-tuned")
        print(" | ".join(SCORE_HEADERS))
        for row in decision.rows:
            print(" | ".join(str(x) for x in row))
        print(("better: " if decision.adopt else "not better: ") + decision.reason)
    print(f"metrics: {out / 'metrics.csv'}")
    sys.stdout.flush()
    return 0
