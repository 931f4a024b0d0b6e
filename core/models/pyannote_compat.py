"""Import of pyannote.audio ToTaToNet checkpoints (PixIT, `pyannote/separation-ami-1.0` style).

`convert_checkpoint(path) -> ToTaToNet` reads a Lightning .ckpt WITHOUT unpickling arbitrary
objects: `torch.load(weights_only=True)`; pyannote stores its task `Specifications` (a dataclass
with two enums) in ckpt["pyannote.audio"], which the weights-only unpickler refuses, so for
exactly those three names inert stand-in classes are allowlisted (they hold data, run no code).
Anything else that is not tensors / containers / numbers is refused with a ModelError.

Hyper-parameters come from ckpt["hyper_parameters"] (encoder_decoder, dprnn, linear, diar,
wavlm_frozen, sample_rate); `n_sources` is not saved by pyannote and is read from the shape of
`masker.first_out.1.weight` (n_sources * bn_chan, bn_chan, 1, 1); WavLM is present when
`wavlm.*` tensors are. A checkpoint whose architecture is `core.models.pyannote_arch.ToTaToNetEncoderReLU`
(written by `pixit export --relu-subclass`) converts with encoder_activation "relu".

Reference parameter names and shapes (pyannote.audio 4.0.7 ToTaToNet + asteroid 0.7.0 DPRNN,
paper config: n_filters 64, kernel 32, stride 16, bn_chan 128, hid 128, 6 repeats, 3 sources) and
where they go in this project's ToTaToNet:

    encoder.filterbank._filters          (64, 1, 32)      -> encoder.weight (Conv1d, no bias)
    decoder.filterbank._filters          (64, 1, 32)      -> decoder.weight (ConvTranspose1d)
    masker.bottleneck.0.gamma / .beta    (C_in,)          -> masker.input_norm.gamma / .beta (gLN)
    masker.bottleneck.1.weight / .bias   (128, C_in, 1)   -> masker.bottleneck.weight / .bias
    masker.net.{i}.intra_RNN.rnn.{weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0}[_reverse]
                                         (512, 128) ...   -> masker.blocks.{i}.0.rnn.*
    masker.net.{i}.intra_linear.weight   (128, 256)       -> masker.blocks.{i}.0.linear.weight (+ bias)
    masker.net.{i}.intra_norm.gamma/beta (128,)           -> masker.blocks.{i}.0.norm.gamma / .beta
    masker.net.{i}.inter_{RNN.rnn,linear,norm}.*          -> masker.blocks.{i}.1.{rnn,linear,norm}.*
    masker.first_out.0.weight            (1,) PReLU       -> masker.first_out.0.weight
    masker.first_out.1.weight / .bias    (384, 128, 1, 1) -> masker.first_out.1.*
    masker.net_out.0.weight / .bias      (128, 128, 1)    -> masker.gate_tanh.0.*
    masker.net_gate.0.weight / .bias     (128, 128, 1)    -> masker.gate_sigmoid.0.*
    masker.mask_net.weight               (64, 128, 1)     -> masker.mask_conv.weight
    linear.{j}.weight / .bias            (64, 64)         -> diarization.mlp.{2j}.weight / .bias
    classifier.weight / .bias            (1, 64)          -> diarization.out.weight / .bias
    wavlm.<transformers WavLMModel keys>                  -> ssl.model.<same keys>

C_in = 64 without WavLM, 64 + 1024 = 1088 with WavLM-Large. The converted model uses
encoder_activation="none" (asteroid's free encoder is linear), and for WavLM: layers="last"
(pyannote uses last_hidden_state only), no waveform normalisation (pyannote feeds the raw
waveform), no projection (proj_dim=0: the 1024-d features are concatenated, as in pyannote),
upsample="repeat" (repeat_interleave by 320/stride then zero padding, as pyannote), layerdrop 0
and no SpecAugment. The WavLM transformers config is rebuilt from the tensor shapes
(hidden size, layers, FFN size, heads from the relative-position table, conv stack, norms), so
nothing is downloaded.

Verified (tests/test_pyannote_compat.py): a checkpoint with exactly these names and shapes, saved
the way Lightning saves it (state_dict + hyper_parameters + pyannote.audio specifications), loads
strictly (no missing / unexpected tensors) and the converted model reproduces, to float32
precision, an independent re-implementation of the reference forward pass (asteroid layout
(B, N, chunk, n_chunks), linear encoder, gLN, gated DPRNN output, shared diarization head) on
random weights; a tiny WavLM variant converts with all its tensors mapped and runs; a checkpoint
with WavLM-Large's exact names and shapes (transformers on the meta device) converts with its
WavLM rebuilt from the shapes as microsoft/wavlm-large's architecture while the network is blocked
and the offline cache is empty, so the paper's checkpoint never downloads WavLM. The other
direction (pyannote_export.py) is checked in pyannote.audio itself (tests/test_pyannote_export.py).
Not verified here: the real pyannote/separation-ami-1.0 file (gated on the Hugging Face Hub; no
network).

The name table below serves both directions (`map_name`: pyannote -> here, `pyannote_name`: here ->
pyannote), and the stand-in classes serve both the weights-only loading here and the writing of
pyannote's task metadata in pyannote_export.py.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from core.errors import ModelError

__all__ = ["convert_checkpoint", "convert_state_dict", "load_checkpoint", "config_from_checkpoint", "map_name",
           "pyannote_name"]

# (pyannote name, this project's name): {i} a block index, {k} 0 or 1, {w} weight|bias, {g} gamma|beta,
# {rest} anything; both directions are read from this one table (import here, export in pyannote_export.py)
_NAME_PAIRS = [
    ("encoder.filterbank._filters", "encoder.weight"),
    ("decoder.filterbank._filters", "decoder.weight"),
    ("masker.bottleneck.0.{g}", "masker.input_norm.{g}"),
    ("masker.bottleneck.1.{w}", "masker.bottleneck.{w}"),
    ("masker.net.{i}.intra_RNN.rnn.{rest}", "masker.blocks.{i}.0.rnn.{rest}"),
    ("masker.net.{i}.intra_linear.{w}", "masker.blocks.{i}.0.linear.{w}"),
    ("masker.net.{i}.intra_norm.{g}", "masker.blocks.{i}.0.norm.{g}"),
    ("masker.net.{i}.inter_RNN.rnn.{rest}", "masker.blocks.{i}.1.rnn.{rest}"),
    ("masker.net.{i}.inter_linear.{w}", "masker.blocks.{i}.1.linear.{w}"),
    ("masker.net.{i}.inter_norm.{g}", "masker.blocks.{i}.1.norm.{g}"),
    ("masker.first_out.{k}.{w}", "masker.first_out.{k}.{w}"),
    ("masker.net_out.0.{w}", "masker.gate_tanh.0.{w}"),
    ("masker.net_gate.0.{w}", "masker.gate_sigmoid.0.{w}"),
    ("masker.mask_net.weight", "masker.mask_conv.weight"),
    ("classifier.{w}", "diarization.out.{w}"),
    ("wavlm.{rest}", "ssl.model.{rest}"),
]
_PLACEHOLDERS = {"i": r"\d+", "k": "[01]", "w": "weight|bias", "g": "gamma|beta", "rest": ".+"}


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)  # literal, name, literal, name, ...
    return re.compile("^" + "".join(re.escape(part) if n % 2 == 0 else f"(?P<{part}>{_PLACEHOLDERS[part]})"
                                    for n, part in enumerate(parts)) + "$")


_TO_OURS = [(_pattern(theirs), ours) for theirs, ours in _NAME_PAIRS]
_TO_THEIRS = [(_pattern(ours), theirs) for theirs, ours in _NAME_PAIRS]
# pyannote's linear.{j} are our diarization.mlp.{2j} (an nn.Sequential of Linear, LeakyReLU, ...)
_LINEAR, _MLP = re.compile(r"^linear\.(\d+)\.(weight|bias)$"), re.compile(r"^diarization\.mlp\.(\d+)\.(weight|bias)$")
_CLN = {"gamma": "norm.weight", "beta": "norm.bias"}  # asteroid cLN -> our ChannelLayerNorm(nn.LayerNorm)


def _rename(name: str, rules) -> str | None:
    for pattern, template in rules:
        m = pattern.match(name)
        if m:
            return template.format(**m.groupdict())
    return None


def map_name(name: str) -> str | None:
    """This project's parameter name for a pyannote ToTaToNet one (None: not a model tensor)."""
    m = _LINEAR.match(name)
    if m:
        return f"diarization.mlp.{2 * int(m.group(1))}.{m.group(2)}"
    return _rename(name, _TO_OURS)


def pyannote_name(name: str) -> str | None:
    """pyannote's parameter name for one of this project's ToTaToNet (None: pyannote has no such tensor)."""
    m = _MLP.match(name)
    if m:
        return f"linear.{int(m.group(1)) // 2}.{m.group(2)}" if int(m.group(1)) % 2 == 0 else None
    for asteroid_param, layer_norm_param in _CLN.items():  # a cLN: "<...>.norm.norm.weight" -> "<...>.norm.gamma"
        if name.endswith("norm." + layer_norm_param) and not name.startswith("ssl."):
            return _rename(name[: -len(layer_norm_param)] + asteroid_param, _TO_THEIRS)
    return _rename(name, _TO_THEIRS)


# ----------------------------------------------------------------------------------------------
# safe loading
# ----------------------------------------------------------------------------------------------
TASK_MODULE = "pyannote.audio.core.task"  # where pyannote keeps the classes of a checkpoint's task metadata


class Specifications:
    """Stand-in for pyannote's Specifications dataclass: holds its fields, runs no code."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})


class Problem:
    """Stand-in for pyannote's Problem enum (pickled, like the enum, as a call with its value)."""

    def __init__(self, value=None):
        self.value = value

    def __reduce__(self):
        return type(self), (self.value,)


class Resolution(Problem):
    """Stand-in for pyannote's Resolution enum."""


STAND_INS = (Specifications, Problem, Resolution)
for _cls in STAND_INS:  # the names the weights-only unpickler allowlists, and pyannote_export writes
    _cls.__module__ = TASK_MODULE


def load_checkpoint(path: str | Path) -> dict:
    """torch.load with weights_only=True (plus inert stand-ins for pyannote's task metadata)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        raise ModelError(f"{path.name}: not a readable PyTorch checkpoint (not a torch.save archive)")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            with torch.serialization.safe_globals(list(STAND_INS)):
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise ModelError(f"{path.name}: refusing to unpickle Python objects in the checkpoint ({first[:200]})") from None
    except Exception as exc:
        raise ModelError(f"{path.name}: not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ModelError(f"{path.name}: not a Lightning checkpoint (no state_dict)")
    return ckpt


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------
def _wavlm_config(state: dict) -> dict:
    """transformers WavLMConfig (as a dict) rebuilt from the shapes of the wavlm.* tensors."""
    from transformers import WavLMConfig

    def shape(key):
        t = state.get(f"wavlm.{key}")
        return None if t is None else tuple(t.shape)

    q = shape("encoder.layers.0.attention.q_proj.weight")
    if q is None:
        raise ModelError("WavLM tensors found but no encoder.layers.0.attention.q_proj.weight")
    hidden = q[0]
    layers = len({int(m.group(1)) for k in state for m in [re.match(r"^wavlm\.encoder\.layers\.(\d+)\.", k)] if m})
    ffn = shape("encoder.layers.0.feed_forward.intermediate_dense.weight")[0]
    rel = shape("encoder.layers.0.attention.rel_attn_embed.weight")  # (num_buckets, heads)
    heads = rel[1] if rel else max(1, hidden // 64)
    conv_dim, conv_kernel = [], []
    i = 0
    while shape(f"feature_extractor.conv_layers.{i}.conv.weight") is not None:
        out_c, _, k = shape(f"feature_extractor.conv_layers.{i}.conv.weight")
        conv_dim.append(out_c)
        conv_kernel.append(k)
        i += 1
    layer_norm_convs = shape("feature_extractor.conv_layers.0.layer_norm.weight") is not None
    default = WavLMConfig()
    conv_stride = list(default.conv_stride) if len(conv_kernel) == len(default.conv_stride) else [2] * len(conv_kernel)
    pos = shape("encoder.pos_conv_embed.conv.weight_v") or shape("encoder.pos_conv_embed.conv.parametrizations.weight.original1")
    groups = hidden // pos[1] if pos else 16
    kernel_pos = pos[2] if pos else 128
    config = WavLMConfig(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
        conv_dim=conv_dim, conv_kernel=conv_kernel, conv_stride=conv_stride,
        conv_bias=shape("feature_extractor.conv_layers.0.conv.bias") is not None,
        feat_extract_norm="layer" if layer_norm_convs else "group",
        do_stable_layer_norm=layer_norm_convs,
        num_conv_pos_embeddings=kernel_pos, num_conv_pos_embedding_groups=groups,
        num_buckets=rel[0] if rel else 320, layerdrop=0.0, apply_spec_augment=False,
    )
    return config.to_dict()


RELU_MODULE, RELU_CLASS = "core.models.pyannote_arch", "ToTaToNetEncoderReLU"  # see pyannote_export.py


def architecture(ckpt: dict) -> str | None:
    """The model class a pyannote checkpoint names (None when it names none)."""
    meta = ckpt.get("pyannote.audio")
    arch = meta.get("architecture") if isinstance(meta, dict) else None
    return arch.get("class") if isinstance(arch, dict) else None


def config_from_checkpoint(ckpt: dict) -> dict:
    """This project's ToTaToNetConfig (as a dict) for a pyannote ToTaToNet checkpoint."""
    hp = ckpt.get("hyper_parameters") or {}
    state = ckpt["state_dict"]
    enc = {"fb_name": "free", "kernel_size": 32, "n_filters": 64, "stride": 16, **(hp.get("encoder_decoder") or {})}
    dprnn = {"n_repeats": 6, "bn_chan": 128, "hid_size": 128, "chunk_size": 100, "norm_type": "gLN",
             "mask_act": "relu", "rnn_type": "LSTM", **(hp.get("dprnn") or {})}
    linear = {"hidden_size": 64, "num_layers": 2, **(hp.get("linear") or {})}
    diar = {"frames_per_second": 125, **(hp.get("diar") or {})}
    sample_rate = int(hp.get("sample_rate", 16000))
    if enc["fb_name"] != "free":
        raise ModelError(f"pyannote encoder filterbank {enc['fb_name']!r} is not supported (only 'free')")
    if int(dprnn.get("num_layers", 1)) != 1 or dprnn.get("use_mulcat", False):
        raise ModelError("pyannote DPRNN with num_layers > 1 or MulCat is not supported")
    if int(linear["num_layers"]) < 1:
        raise ModelError("pyannote ToTaToNet without linear layers (energy head) is not supported")
    first_out = state.get("masker.first_out.1.weight")
    if first_out is None:
        raise ModelError("checkpoint has no masker.first_out.1.weight: not a ToTaToNet (DPRNN) checkpoint")
    bn = int(dprnn["bn_chan"])
    n_sources = int(first_out.shape[0]) // bn
    pool = sample_rate / float(diar["frames_per_second"]) / int(enc["stride"])
    if abs(pool - round(pool)) > 1e-6:
        raise ModelError(f"diarization frame rate {diar['frames_per_second']} is not a whole number of encoder frames")
    config = {
        "sample_rate": sample_rate, "n_sources": n_sources, "n_filters": int(enc["n_filters"]),
        "kernel_size": int(enc["kernel_size"]), "stride": int(enc["stride"]), "masker": "dprnn",
        "masker_params": {
            "bn_chan": bn, "hid_size": int(dprnn["hid_size"]), "chunk_size": int(dprnn["chunk_size"]),
            "hop": int(dprnn.get("hop_size") or int(dprnn["chunk_size"]) // 2), "n_repeats": int(dprnn["n_repeats"]),
            "norm": dprnn["norm_type"], "mask_act": dprnn["mask_act"], "rnn_type": str(dprnn["rnn_type"]).upper(),
            "bidirectional": bool(dprnn.get("bidirectional", True)), "dropout": float(dprnn.get("dropout", 0.0)),
        },
        "diar_pool": int(round(pool)), "diar_hidden": int(linear["hidden_size"]), "diar_layers": int(linear["num_layers"]),
        "encoder_activation": "relu" if architecture(ckpt) == RELU_CLASS else "none", "ssl": None,
    }
    if any(k.startswith("wavlm.") for k in state):
        config["ssl"] = {
            "name_or_path": "microsoft/wavlm-large", "layers": "last", "frozen": bool(hp.get("wavlm_frozen", False)),
            "normalize": False, "layerdrop": 0.0, "spec_augment": False, "proj_dim": 0, "combine": "concat",
            "upsample": "repeat", "hf_config": _wavlm_config(state),
        }
    return config


def convert_state_dict(state: dict, model) -> dict:
    """Rename pyannote tensors onto `model`'s names; ModelError listing anything unmatched."""
    targets = model.state_dict()
    out, unknown = {}, []
    for name, tensor in state.items():
        new = map_name(name)
        if new is not None and new not in targets:
            for old, repl in _CLN.items():  # cLN norms are nn.LayerNorm here
                if new.endswith("." + old) and new[: -len(old)] + repl in targets:
                    new = new[: -len(old)] + repl
        if new is not None and new not in targets:  # old weight_norm names <-> parametrizations
            for a, b in ((".weight_g", ".parametrizations.weight.original0"), (".weight_v", ".parametrizations.weight.original1")):
                if new.endswith(a) and new[: -len(a)] + b in targets:
                    new = new[: -len(a)] + b
                elif new.endswith(b) and new[: -len(b)] + a in targets:
                    new = new[: -len(b)] + a
        if new is None or new not in targets:
            unknown.append(name)
            continue
        if tuple(targets[new].shape) != tuple(tensor.shape):
            raise ModelError(f"{name}: shape {tuple(tensor.shape)} does not fit {new} {tuple(targets[new].shape)}")
        out[new] = tensor.detach().to(targets[new].dtype)
    # the same tensor registered under two names (e.g. the SSL front end's view of the encoder
    # layers) is filled from whichever name was mapped
    by_storage: dict[tuple, str] = {}
    for key, value in targets.items():
        if key in out:
            by_storage[(value.data_ptr(), tuple(value.shape))] = key
    for key, value in targets.items():
        alias = by_storage.get((value.data_ptr(), tuple(value.shape)))
        if key not in out and alias is not None:
            out[key] = out[alias]
    missing = [k for k in targets if k not in out]
    if unknown:
        raise ModelError(f"checkpoint tensors with no place in ToTaToNet: {', '.join(unknown[:6])}{' ...' if len(unknown) > 6 else ''}")
    if missing:
        raise ModelError(f"ToTaToNet tensors missing from the checkpoint: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    return out


def convert_checkpoint(path: str | Path, device: str = "cpu"):
    """A ToTaToNet (eval mode) with the weights of a pyannote.audio ToTaToNet Lightning checkpoint."""
    from core.models.totatonet import ToTaToNet

    ckpt = load_checkpoint(path)
    if architecture(ckpt) not in (None, "ToTaToNet", RELU_CLASS):
        raise ModelError(f"{Path(path).name}: a pyannote {architecture(ckpt)} checkpoint, not ToTaToNet")
    config = config_from_checkpoint(ckpt)
    try:
        model = ToTaToNet(config)
    except ModelError as exc:
        raise ModelError(f"{Path(path).name}: {exc}") from None
    state = convert_state_dict(ckpt["state_dict"], model)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
