"""`pixit export MODEL OUT --format pyannote|pixit`: a model in another format.

- `pyannote` (default): OUT/pytorch_model.bin (+ the model's params.json, which pyannote ignores and
  a way back keeps), a pyannote.audio 4 ToTaToNet checkpoint that
  `pyannote.audio.Model.from_pretrained(OUT)` loads and that computes the same outputs (see
  core/models/pyannote_export.py for what can and cannot be expressed, and --relu-subclass).
  --check runs it in pyannote.audio's own environment (.venv-pyannote or $PIXIT_PYANNOTE_PYTHON) on
  5 s of the shipped real recording and compares with this project's model.
- `pixit`: OUT becomes a model folder of this project (config.json + model.safetensors, plus the
  params.json tuned for the model): converts a pyannote checkpoint, or copies a hub model locally.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.commands._args import MODEL_HELP, bounded_float
from core.errors import PixitError

CHECK_TOLERANCE = 1e-4  # float32 round-off of the same computation in two programs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument("out", metavar="OUT", help="output folder (pyannote: or a .bin / .ckpt file name)")
    parser.add_argument("--format", choices=("pyannote", "pixit"), default="pyannote",
                        help="pyannote: a pyannote.audio 4 checkpoint; pixit: this project's model folder (default pyannote)")
    parser.add_argument("--relu-subclass", action="store_true",
                        help="for a model with a ReLU after its encoder (the shipped default): name the architecture "
                             "core.models.pyannote_arch.ToTaToNetEncoderReLU, which pyannote.audio then imports")
    parser.add_argument("--duration", type=bounded_float(0, 60, low_open=True), default=5.0, metavar="S",
                        help="chunk duration pyannote's pipeline slides, stored in the checkpoint (default 5)")
    parser.add_argument("--check", action="store_true",
                        help="load the checkpoint in pyannote.audio's environment and compare its outputs")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint / model folder")


def _check(net, checkpoint: Path) -> str:
    """Run `checkpoint` in pyannote.audio and compare with `net` on 5 s of the shipped real recording."""
    import numpy as np
    import torch

    import core
    from core.audio import load_audio
    from core.models.pyannote_export import run_in_pyannote

    sample = Path(core.__file__).resolve().parent.parent / "assets" / "real" / "sample.wav"
    waveform = load_audio(sample)[: 5 * 16000][None]
    (activations, sources), = run_in_pyannote([checkpoint], waveform)
    with torch.inference_mode():
        ours_sources, ours_activations = (t.numpy() for t in net.cpu().eval()(torch.from_numpy(waveform)))
    d_act = float(np.abs(activations - ours_activations).max())
    d_src = float(np.abs(sources - ours_sources).max() / max(1.0, float(np.abs(ours_sources).max())))
    if activations.shape != ours_activations.shape or max(d_act, d_src) > CHECK_TOLERANCE:
        checkpoint.unlink()
        raise PixitError(f"pyannote.audio computes something else from the exported checkpoint (activations differ by "
                         f"{d_act:.2g}, sources by {d_src:.2g}); it was removed")
    return f"checked in pyannote.audio: activations differ by at most {d_act:.1g}, sources by {d_src:.1g} (relative)"


def run(args: argparse.Namespace) -> int:
    from core.fileio import atomic_write_text
    from core.models import load_model, resolve_model
    from core.models.resolve import PARAMS_NAME, PYANNOTE_WEIGHTS_NAME

    out = Path(args.out).expanduser()
    net = load_model(args.model)
    if args.format == "pixit":
        from core.pipeline import copy_tuned_params

        if (out / "config.json").exists() and not args.overwrite:
            raise PixitError(f"{out} already holds a model (pass --overwrite to replace it)")
        net.save(out)
        copy_tuned_params(args.model, out)
        print(f"wrote the model folder {out} (load it with --model {out})")
        return 0
    from core.models.pyannote_export import export_pyannote

    target = export_pyannote(net, out, relu_subclass=args.relu_subclass, duration=args.duration, overwrite=args.overwrite)
    folder = target.parent if target.name == PYANNOTE_WEIGHTS_NAME else target
    params = resolve_model(args.model).params_path
    if folder == target.parent and params is not None:  # ignored by pyannote; kept for the way back
        atomic_write_text(folder / PARAMS_NAME, params.read_text(encoding="utf-8"))
    print(f"wrote {target}: pyannote.audio 4 loads it with Model.from_pretrained({str(folder)!r})")
    if args.check:
        print(_check(net, target))
    return 0
