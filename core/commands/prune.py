"""`pixit prune`: structured pruning of a model's SSL front end (distill + prune, shrink, fine-tune).

    pixit prune --model M --train MANIFEST --sparsity 0.8 --out DIR [--steps N] [--target params|macs]

M must be a ToTaToNet with an SSL front end, already fine-tuned for the task ("fine-tune before
pruning"). Writes DIR/model (the ToTaToNet with the pruned front end), DIR/ssl (the pruned SSL
network alone, loadable with core.pruning.load_pruned), DIR/pruning.json (kept units, sizes)
and DIR/history.csv (one row per step). With --finetune-steps N the pruned model is then
fine-tuned again for the joint task with core.training.train -> DIR/finetune/model.

    pixit prune --bench [--ssl HF_FOLDER] [--sparsity 0.8] [--target params|macs]

times the SSL forward on this CPU before/after shrinking to the sparsity (same run, ratio).
Without --ssl it uses a WavLM Base(+)-shaped model with random weights; with --ssl a local
Hugging Face folder (e.g. a downloaded microsoft/wavlm-base-plus). The pruned shape comes from
keeping the same fraction of every unit group (random units): the speed only depends on shapes.
"""

from __future__ import annotations

import argparse
import sys

from core.commands._args import MODEL_HELP, bounded_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="M", help=f"the model to prune, with an SSL front end fine-tuned for the task: {MODEL_HELP}")
    parser.add_argument("--train", metavar="MANIFEST", help="recordings whose audio is used for distillation (labels are not needed)")
    parser.add_argument("--out", metavar="DIR", help="output folder: DIR/model, DIR/ssl, DIR/pruning.json, DIR/history.csv")
    parser.add_argument("--sparsity", type=bounded_float(0, 1, high_open=True), default=0.8, help="target sparsity (default 0.8 = keep 20%%)")
    parser.add_argument("--target", choices=("params", "macs"), default="params",
                        help="what the sparsity counts: parameters, or MACs per second of audio (default params)")
    parser.add_argument("--steps", type=positive_int, default=1000, help="distill + prune steps (default 1000)")
    parser.add_argument("--warmup-steps", type=positive_int, help="steps over which the target ramps up (default steps/6)")
    parser.add_argument("--further-steps", type=int, default=0, help="distillation steps of the pruned model (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="chunks per step (default 4)")
    parser.add_argument("--chunk-duration", type=bounded_float(0, 60, low_open=True), default=4.0, help="chunk length in seconds (default 4)")
    parser.add_argument("--lr", type=bounded_float(0, 1, low_open=True), default=2e-4, help="learning rate of the SSL weights (default 2e-4)")
    parser.add_argument("--reg-lr", type=bounded_float(0, 10, low_open=True), default=2e-2, help="learning rate of gates and Lagrange multipliers (default 2e-2)")
    parser.add_argument("--units", default="conv,head,ffn",
                        help="prunable units, comma-separated: conv,head,ffn[,attlayer,ffnlayer] (default conv,head,ffn)")
    parser.add_argument("--distill-layers", help="hidden states to distil, e.g. 0,4,8,12 (default 0, L/3, 2L/3, L)")
    parser.add_argument("--finetune-steps", type=int, default=0,
                        help="fine-tune the pruned model for the joint task for this many steps (default 0: no)")
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--bench", action="store_true", help="only time the SSL forward before/after pruning")
    parser.add_argument("--ssl", metavar="HF_FOLDER", help="--bench: local transformers SSL folder (default: random WavLM Base shape)")
    parser.add_argument("--bench-seconds", type=bounded_float(0, 3600, low_open=True), default=10.0, help="--bench: audio length per forward (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="--bench: torch CPU threads (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _progress_printer(quiet: bool):
    state = {"last": -1.0}

    def progress(fraction: float, message: str) -> None:
        if quiet:
            return
        if fraction >= 1.0 or fraction - state["last"] >= 0.01:
            state["last"] = fraction
            print(f"[{fraction:6.1%}] {message}", file=sys.stderr, flush=True)

    return progress


def run(args: argparse.Namespace) -> int:
    if args.bench:
        return _bench(args)
    from core.errors import PixitError

    missing = [f"--{name}" for name in ("model", "train", "out") if not getattr(args, name)]
    if missing:
        raise PixitError(f"missing {', '.join(missing)} (or use --bench)")
    result = prune_model(
        args.model, args.train, args.out, sparsity=args.sparsity, target=args.target, steps=args.steps,
        warmup_steps=args.warmup_steps, further_steps=args.further_steps, batch_size=args.batch_size,
        chunk_duration=args.chunk_duration, lr=args.lr, reg_lr=args.reg_lr, units=args.units,
        distill_layers=args.distill_layers, finetune_steps=args.finetune_steps, device=args.device,
        seed=args.seed, progress=_progress_printer(args.quiet),
    )
    s = result["summary"]
    print(f"SSL parameters {s['original_params'] / 1e6:.2f}M -> {s['params'] / 1e6:.2f}M "
          f"(sparsity {s['sparsity']:.1%} params, {s['macs_sparsity']:.1%} MACs)")
    print(f"pruned model: {result['model_dir']}")
    if result.get("finetuned_dir"):
        print(f"fine-tuned pruned model: {result['finetuned_dir']}")
    return 0


def prune_model(model, train_manifest, out_dir, sparsity: float = 0.8, target: str = "params", steps: int = 1000,
                warmup_steps: int | None = None, further_steps: int = 0, batch_size: int = 4,
                chunk_duration: float = 4.0, lr: float = 2e-4, reg_lr: float = 2e-2, units="conv,head,ffn",
                distill_layers=None, finetune_steps: int = 0, device: str = "auto", seed: int = 0,
                progress=None, should_stop=None) -> dict:
    """Prune the SSL front end of ToTaToNet `model` and save the result under `out_dir`.

    Returns {"model_dir", "ssl_dir", "summary", "finetuned_dir"}; PixitError (one line) for a
    model without an SSL front end or bad settings."""
    from pathlib import Path

    import torch

    from core.errors import PixitError
    from core.fileio import atomic_write_json, atomic_write_text
    from core.models import load_model
    from core.pipeline import copy_tuned_params
    from core.pruning import save_pruned
    from core.pruning.distill import AudioChunks, PruneConfig, prune_ssl

    net = load_model(model, device="cpu")
    ssl = getattr(net, "ssl", None)
    if ssl is None:
        raise PixitError(f"model {model} has no SSL front end: nothing to prune")
    if getattr(ssl, "uses_fbank", False):
        raise PixitError("pruning supports WavLM, HuBERT and wav2vec2 front ends, not w2v-BERT")
    if isinstance(units, str):
        units = tuple(u.strip() for u in units.split(",") if u.strip())
    if isinstance(distill_layers, str):
        try:
            distill_layers = tuple(int(x) for x in distill_layers.split(",") if x.strip())
        except ValueError:
            raise PixitError(f"--distill-layers must be integers like 0,4,8,12, got {distill_layers!r}") from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = PruneConfig(target_sparsity=sparsity, target=target, steps=steps, warmup_steps=warmup_steps,
                      further_steps=further_steps, batch_size=batch_size, chunk_seconds=chunk_duration, lr=lr,
                      reg_lr=reg_lr, units=units, distill_layers=distill_layers,
                      normalize=bool(ssl.cfg.get("normalize", False)), seed=seed, device=device)
    audio = AudioChunks.from_manifest(train_manifest, chunk_duration, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    ssl_model = ssl.model
    frozen = bool(getattr(ssl, "frozen", False))
    result = prune_ssl(ssl_model, audio, cfg, progress=progress, should_stop=should_stop)
    pruned = result.model.cpu().eval()

    # put the pruned network back into the ToTaToNet (same encoder layer objects: shrink is in place)
    ssl.model = pruned
    if hasattr(ssl, "_layers"):
        ssl._layers = pruned.encoder.layers
    if hasattr(ssl, "set_frozen"):
        ssl.set_frozen(frozen)
    hf = pruned.config.to_dict()
    ssl.cfg["hf_config"] = hf
    net.config.ssl = {**net.config.ssl, "hf_config": hf}
    net.cpu().eval()
    model_dir = out / "model"
    net.save(model_dir)
    copy_tuned_params(model, model_dir)
    ssl_dir = save_pruned(pruned, out / "ssl", summary=result.summary)
    summary = {**result.summary, "model": str(model), "model_dir": str(model_dir), "ssl_dir": str(ssl_dir),
               "expected_sparsity": result.expected_sparsity}
    atomic_write_json(out / "pruning.json", summary)
    keys = sorted({k for row in result.history for k in row})
    lines = [",".join(keys)] + [",".join(str(row.get(k, "")) for k in keys) for row in result.history]
    atomic_write_text(out / "history.csv", "\n".join(lines) + "\n")

    finetuned = None
    if finetune_steps > 0:
        from core.training import TrainConfig, train

        tcfg = TrainConfig(max_steps=int(finetune_steps), seed=seed)
        res = train(train_manifest, out / "finetune", init=model_dir, config=tcfg,
                    progress=(lambda f, m: progress(f, f"fine-tune: {m}")) if progress else None,
                    should_stop=should_stop)
        finetuned = str(res.model_dir)
    return {"model_dir": model_dir, "ssl_dir": ssl_dir, "summary": summary, "finetuned_dir": finetuned}


def _bench(args: argparse.Namespace) -> int:
    import json
    import warnings

    import torch

    from core.errors import PixitError
    from core.pruning import attach_gates, shrink
    from core.pruning.bench import bench_ssl, set_uniform_masks, wavlm_base_config

    warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
    torch.manual_seed(args.seed)
    if args.ssl:
        from transformers import AutoModel

        try:
            model = AutoModel.from_pretrained(args.ssl, local_files_only=True, dtype=torch.float32)
        except Exception as e:
            raise PixitError(f"cannot load SSL model {args.ssl}: {str(e).splitlines()[0][:160]}") from None
        name = args.ssl
    else:
        from transformers import WavLMModel

        model = WavLMModel(wavlm_base_config())
        name = "random WavLM Base shape"
    model.eval()
    gates = attach_gates(model, units=tuple(args.units.split(",")))
    reached = set_uniform_masks(gates, args.sparsity, args.target, seed=args.seed)
    pruned = shrink(gates)
    gates.detach()
    res = bench_ssl(model, pruned, seconds=args.bench_seconds, threads=args.threads)
    kept = gates.hard_counts()
    res.update({"model": name, "target": args.target, "sparsity": reached,
                "params_sparsity": gates.hard_sparsity("params"), "macs_sparsity": gates.hard_sparsity("macs"),
                "kept_conv_channels": kept.conv, "kept_heads": kept.heads, "kept_ffn": kept.ffn})
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    from core.cli import main

    sys.exit(main(["prune", *sys.argv[1:]]))
