"""Export to pyannote.audio 4: a checkpoint that `pyannote.audio.Model.from_pretrained(OUT)` loads and
that computes the same outputs as this project's model (the inverse of pyannote_compat.py).

`export_pyannote(model, out_path) -> Path` writes `OUT/pytorch_model.bin` (pyannote's file name; OUT
may also name the file itself), a Lightning checkpoint as pyannote saves it: `state_dict` under
pyannote's parameter names (the one name table of pyannote_compat.py, read backwards),
`hyper_parameters` for `ToTaToNet.__init__`, and `pyannote.audio` metadata (version, architecture,
the PixIT task's two Specifications). This project's environment does not need pyannote.audio for
that: the Specifications are written with pyannote's class names by a pickler that knows the
stand-ins of pyannote_compat.py, so the file is what pyannote itself would have saved.

Two traps found by building one, both handled:
- pyannote does not save `use_wavlm` (nor `n_sources`) in the hyper-parameters; Lightning then
  rebuilds a WavLM-less model *with* WavLM (and downloads WavLM-Large) and with 3 sources. Both go
  into `hyper_parameters` here, which Lightning passes to `ToTaToNet.__init__` on load.
- a model with a ReLU after its encoder (`encoder_activation="relu"`, the shipped default model)
  computes a different function with the same weights in pyannote's ToTaToNet, whose asteroid free
  encoder is linear (tests/test_pyannote_export.py counts how many activation frames flip). Such a
  model is refused, unless `relu_subclass=True`: then the checkpoint names the architecture
  `core.models.pyannote_arch.ToTaToNetEncoderReLU` (pyannote's ToTaToNet plus that ReLU), which
  pyannote.audio imports by name, so that environment needs this package importable.

Everything else pyannote's ToTaToNet cannot express is refused with one line saying what: another
masker than DPRNN, a diarization head that is not 64 wide (pyannote's classifier is Linear(64, 1)),
an SSL front end that is not WavLM-Large used the way pyannote uses it (last layer, raw waveform,
no projection, features repeated to the encoder rate). For WavLM, pyannote builds
`microsoft/wavlm-large` from the Hub when it loads the checkpoint, then overwrites its weights.

Outputs match for inputs whose length the encoder tiles exactly ((T - kernel) % stride == 0, e.g.
5 s windows): on other lengths this project zero-pads the last partial frame, pyannote drops it.
`run_in_pyannote` computes a checkpoint's outputs in pyannote.audio's own environment (a separate
interpreter, `.venv-pyannote` or $PIXIT_PYANNOTE_PYTHON) for comparison.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import subprocess
import tempfile
import types
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from core.errors import ModelError, PixitError
from core.fileio import publish
from core.models.pyannote_compat import (RELU_CLASS, RELU_MODULE, STAND_INS, TASK_MODULE, Problem, Resolution,
                                         Specifications, pyannote_name)
from core.models.resolve import PYANNOTE_WEIGHTS_NAME, load_model
from core.models.totatonet import ToTaToNet

__all__ = ["export_pyannote", "check_exportable", "pyannote_blockers", "pyannote_python", "run_in_pyannote", "PYANNOTE_VERSION"]

PYANNOTE_VERSION = "4.0.7"  # the pyannote.audio release this format is checked against (any 4.x loads it)
WAVLM_LARGE = "microsoft/wavlm-large"  # what pyannote's ToTaToNet builds when use_wavlm is True
_WAVLM_FIELDS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim",
                 "conv_kernel", "conv_stride", "conv_bias", "feat_extract_norm", "do_stable_layer_norm",
                 "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "num_buckets", "max_bucket_distance")
_PROBLEM = {"MONO_LABEL_CLASSIFICATION": 1, "MULTI_LABEL_CLASSIFICATION": 2}
_FRAME = 1  # pyannote Resolution.FRAME


def _dprnn_settings(net: ToTaToNet) -> dict:
    from core.models.maskers import DPRNN

    defaults = {k: v.default for k, v in inspect.signature(DPRNN.__init__).parameters.items()
                if v.default is not inspect.Parameter.empty}
    return {**defaults, **net.config.masker_params}


def _wavlm_large_config() -> dict:
    """microsoft/wavlm-large's configuration (cache or Hub), what pyannote will build."""
    from transformers import AutoConfig

    from core.hub import translated_errors

    with translated_errors(WAVLM_LARGE, filename="config.json"):
        return AutoConfig.from_pretrained(WAVLM_LARGE).to_dict()


def pyannote_blockers(net: ToTaToNet, relu_subclass: bool = False) -> list[str]:
    """Why pyannote.audio's ToTaToNet cannot compute what `net` computes (empty: it can)."""
    c = net.config
    problems = []
    if c.masker != "dprnn":
        problems.append(f"its masker is {c.masker!r}, pyannote's ToTaToNet has a DPRNN")
    if c.diar_layers < 1 or c.diar_hidden != 64:
        problems.append(f"its diarization head has {c.diar_layers} layer(s) of {c.diar_hidden}, pyannote's classifier "
                        "is Linear(64, 1) after 64-wide layers")
    fps = c.sample_rate / (c.stride * c.diar_pool)
    if int(c.sample_rate / fps / c.stride) != c.diar_pool:
        problems.append(f"its diarization pooling ({c.diar_pool}) is not a whole frame rate for pyannote")
    dprnn = _dprnn_settings(net) if c.masker == "dprnn" else {}
    if dprnn and dprnn.get("norm") not in ("gLN", "cLN"):
        problems.append(f"its DPRNN norm {dprnn.get('norm')!r} has no asteroid counterpart here")
    if c.encoder_activation == "relu" and not relu_subclass:
        problems.append("it has a ReLU after its encoder (encoder_activation 'relu') that pyannote's linear asteroid "
                        "encoder lacks, so the same weights would compute a different function; pass --relu-subclass "
                        f"to name the architecture {RELU_MODULE}.{RELU_CLASS} (pyannote's ToTaToNet plus that ReLU; "
                        "loading it then needs this package importable next to pyannote.audio)")
    if net.ssl is not None:
        ssl = net.ssl.config_dict()
        wanted = {"layers": "last", "normalize": False, "proj_dim": 0, "combine": "concat", "upsample": "repeat"}
        wrong = {k: ssl.get(k) for k, v in wanted.items() if ssl.get(k) != v}
        if wrong or net.ssl.model_type != "wavlm":
            problems.append(f"its SSL front end ({net.ssl.model_type}, {wrong}) is not used the way pyannote uses WavLM "
                            f"({wanted})")
        elif net.ssl.hop_length % c.stride:
            problems.append(f"the SSL hop ({net.ssl.hop_length}) is not a multiple of the encoder stride ({c.stride})")
        else:
            large = _wavlm_large_config()
            ours = ssl.get("hf_config", {})
            differ = [k for k in _WAVLM_FIELDS if ours.get(k) != large.get(k)]
            if differ:
                problems.append(f"its WavLM is not shaped like {WAVLM_LARGE}, which pyannote builds ({', '.join(differ)} differ)")
    return problems


def check_exportable(net: ToTaToNet, relu_subclass: bool = False) -> None:
    """A one-line ModelError with every reason pyannote's ToTaToNet cannot compute what `net` computes."""
    problems = pyannote_blockers(net, relu_subclass)
    if problems:
        raise ModelError(f"cannot export for pyannote.audio: {'; '.join(problems)}")


def _hyper_parameters(net: ToTaToNet) -> dict:
    c = net.config
    d = _dprnn_settings(net)
    return {
        "sample_rate": c.sample_rate, "num_channels": 1,
        "encoder_decoder": {"fb_name": "free", "kernel_size": c.kernel_size, "n_filters": c.n_filters, "stride": c.stride},
        "linear": {"hidden_size": c.diar_hidden, "num_layers": c.diar_layers},
        "dprnn": {"n_repeats": d["n_repeats"], "bn_chan": d["bn_chan"], "hid_size": d["hid_size"],
                  "chunk_size": d["chunk_size"], "hop_size": d["hop"], "norm_type": d["norm"], "mask_act": d["mask_act"],
                  "rnn_type": d["rnn_type"], "bidirectional": d["bidirectional"], "dropout": d["dropout"]},
        "diar": {"frames_per_second": c.sample_rate / (c.stride * c.diar_pool)},
        "wavlm_frozen": bool(net.ssl.frozen) if net.ssl is not None else False,
        # not saved by pyannote itself (trap 1): without them pyannote rebuilds WavLM and 3 sources
        "use_wavlm": net.ssl is not None, "n_sources": c.n_sources,
    }


def _state_dict(net: ToTaToNet) -> dict:
    out, mapped_storage = {}, set()
    state = net.state_dict()
    for name, tensor in state.items():
        theirs = pyannote_name(name)
        if theirs is not None:
            out[theirs] = tensor.detach().cpu().clone()
            mapped_storage.add(tensor.data_ptr())
    unmapped = [n for n, t in state.items() if pyannote_name(n) is None and t.data_ptr() not in mapped_storage]
    if unmapped:  # an alias of a mapped tensor (the SSL front end's view of its layers) is fine
        raise ModelError(f"tensors with no place in pyannote's ToTaToNet: {', '.join(unmapped[:6])}")
    return out


def _specifications(net: ToTaToNet, duration: float) -> tuple:
    classes = [f"speaker#{i + 1}" for i in range(net.config.n_sources)]

    def spec(problem: str, invariant: bool):
        return Specifications(problem=Problem(_PROBLEM[problem]), resolution=Resolution(_FRAME), duration=float(duration),
                              min_duration=None, warm_up=(0.0, 0.0), classes=classes, powerset_max_classes=None,
                              permutation_invariant=invariant)

    # PixIT's task: (speaker diarization, speaker separation); ToTaToNet's activation is for the first
    return spec("MULTI_LABEL_CLASSIFICATION", True), spec("MONO_LABEL_CLASSIFICATION", False)


class _PyannotePickler(pickle._Pickler):
    """The pure-Python pickler, writing pyannote's class names for the stand-ins (GLOBAL opcode, as
    pickle writes any class at torch's protocol 2) instead of looking pyannote up in sys.modules."""

    def save_global(self, obj, name=None):
        if obj in STAND_INS:
            self.write(pickle.GLOBAL + f"{TASK_MODULE}\n{obj.__qualname__}\n".encode("utf-8"))
            self.memoize(obj)
            return
        super().save_global(obj, name)


_PICKLE_MODULE = types.ModuleType("pyannote_pickle")  # what torch.save takes: a module with a Pickler
_PICKLE_MODULE.Pickler = _PyannotePickler


def export_pyannote(model: ToTaToNet | str | Path, out_path: str | Path, *, relu_subclass: bool = False,
                    duration: float = 5.0, overwrite: bool = False) -> Path:
    """Write `model` as a pyannote.audio 4 ToTaToNet checkpoint; returns the checkpoint file.

    `out_path` is a folder (OUT/pytorch_model.bin is written, what `Model.from_pretrained(OUT)` reads)
    or a file name ending in .bin / .ckpt. `duration` is the chunk length pyannote's pipeline slides
    (the task Specifications). A ModelError says what pyannote cannot compute (see
    `pyannote_blockers`); an existing checkpoint is kept unless `overwrite`."""
    from importlib.metadata import version

    net = model if isinstance(model, ToTaToNet) else load_model(model)
    check_exportable(net, relu_subclass)
    out_path = Path(out_path)
    target = out_path if out_path.suffix in (".bin", ".ckpt") else out_path / PYANNOTE_WEIGHTS_NAME
    if target.exists() and not overwrite:
        raise PixitError(f"{target} exists (pass --overwrite to replace it)")
    relu = net.config.encoder_activation == "relu"
    ckpt = {
        "state_dict": _state_dict(net),
        "hyper_parameters": _hyper_parameters(net),
        "hparams_name": "kwargs",
        "pytorch-lightning_version": version("lightning"),  # what Lightning checks when it loads
        "epoch": 0, "global_step": 0,
        "pyannote.audio": {
            "versions": {"pyannote.audio": PYANNOTE_VERSION},
            "architecture": {"module": RELU_MODULE if relu else "pyannote.audio.models.separation.ToTaToNet",
                             "class": RELU_CLASS if relu else "ToTaToNet"},
            "specifications": _specifications(net, duration),
        },
        "pixit-workbench": {"config": json.loads(json.dumps(net.config.to_dict()))},  # provenance
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(ckpt, tmp, pickle_module=_PICKLE_MODULE)
        publish(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


# ------------------------------------------------------------------------------ running pyannote
def pyannote_python() -> Path | None:
    """The interpreter of pyannote.audio's environment: $PIXIT_PYANNOTE_PYTHON, else the checkout's
    .venv-pyannote (made by .ci/setup); None when there is none."""
    import core

    given = os.environ.get("PIXIT_PYANNOTE_PYTHON")
    candidate = Path(given) if given else Path(core.__file__).resolve().parent.parent / ".venv-pyannote" / "bin" / "python"
    return candidate if candidate.is_file() else None


_PROBE = Path(__file__).with_name("pyannote_probe.py")


def run_in_pyannote(checkpoints: Sequence[str | Path], waveforms: np.ndarray, python: str | Path | None = None,
                    env: dict | None = None, timeout: float = 900) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each checkpoint, (activations (B, K, F), sources (B, K, T)) as pyannote.audio's
    `Model.from_pretrained` + forward compute them on `waveforms` (B, T) at 16 kHz, in pyannote's own
    environment (`python`, default `pyannote_python()`; one process for all checkpoints). `env` adds
    variables (HF_HUB_OFFLINE ...)."""
    import core

    python = python or pyannote_python()
    if python is None:
        raise PixitError("pyannote.audio's environment was not found: create .venv-pyannote (bash .ci/setup) or "
                         "set PIXIT_PYANNOTE_PYTHON to its interpreter")
    root = str(Path(core.__file__).resolve().parent.parent)  # so that the ReLU architecture can be imported
    extra = dict(env or {})
    with tempfile.TemporaryDirectory(prefix="pixit-pyannote-") as work:
        np.save(Path(work) / "in.npy", np.asarray(waveforms, np.float32))
        run_env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "0", **extra,
                   "PYTHONPATH": os.pathsep.join(filter(None, [root, extra.get("PYTHONPATH")]))}
        # the probe's source runs with -c from an empty folder: run as a script from core/models/, its
        # folder would come first on sys.path and core/models/ssl.py would shadow the ssl module
        proc = subprocess.run([str(python), "-c", _PROBE.read_text(encoding="utf-8"), "in.npy",
                               *(str(Path(c).resolve()) for c in checkpoints)],
                              capture_output=True, text=True, env=run_env, timeout=timeout, cwd=work)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise PixitError(f"pyannote.audio could not run the checkpoint: {last[:300]}")
        results = []
        for i in range(len(checkpoints)):
            out = np.load(Path(work) / f"out{i}.npz")
            results.append((out["activations"], out["sources"]))
        return results
