"""Physically shrink a gated SSL model, save it, and rebuild it later without any gate code.

`shrink(gates)` slices the weights to the units kept by the eval masks and folds the soft mask
values into the next layer's weights (next conv's input channels, out_proj / output_dense
columns, the projection Linear for a gated last conv), so the result computes exactly what the
gated model computes in eval mode, with dense smaller matrices (a real speed-up, no sparse ops).

How the smaller architecture is described: the transformers config keeps `conv_dim` (which
transformers can express per layer, so the feature encoder is rebuilt natively) and gets one
extra key, `pixit_pruning`, with the kept heads and FFN sizes per encoder layer. transformers
configs cannot express per-layer head counts (and WavLM / HuBERT / wav2vec2 attention in
transformers 5.x has no `prune_heads`), so `build_pruned_model(config)` builds the model with
`AutoModel.from_config` and then swaps in right-sized modules:
- WavLM: `PrunedWavLMAttention` (WavLM attention over a subset of heads; the relative position
  bias and the GRU gate are indexed by the original head number);
- HuBERT / wav2vec2: the transformers attention itself with smaller q/k/v/out Linear layers (its
  forward infers the head count from the q projection), or `ConstantAttention` (only the
  out_proj bias) for a layer with no head left;
- FFN: smaller intermediate_dense / output_dense Linear layers (0 units is allowed).
Encoder layers whose attention and FFN are both gone are kept as their layer norms (+ constant
biases): they are not identities, and the SSL front end needs all L+1 hidden states for its
layer weights.

A saved pruned SSL folder is config.json (with pixit_pruning) + model.safetensors + pruning.json
(a human-readable summary); `load_pruned(folder)` returns the transformers model. Because the
structure travels inside the transformers config dict, a ToTaToNet that stores
`model.config.to_dict()` rebuilds the pruned front end with `build_pruned_model(config)`.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ModelError
from core.pruning.arch import Arch, counts_of, model_family
from core.pruning.gates import PruningGates

PRUNING_KEY = "pixit_pruning"
SPEC_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
SUMMARY_NAME = "pruning.json"


# -- replacement modules ------------------------------------------------------------------------
class PrunedWavLMAttention(nn.Module):
    """WavLM self-attention restricted to `kept_heads` of the original `total_heads`.

    Same computation as transformers' WavLMAttention for those heads: the relative position
    bias (owned by layer 0, computed for all original heads and passed on between layers as
    (total_heads, T, T)) and the GRU gate (input chunk h of the residual stream for head h) are
    indexed by the original head numbers. No head left: the output is the out_proj bias."""

    def __init__(self, embed_dim: int, total_heads: int, kept_heads: list[int], dropout: float = 0.0,
                 num_buckets: int = 320, max_distance: int = 800, has_relative_position_bias: bool = False):
        super().__init__()
        self.embed_dim = embed_dim
        self.total_heads = total_heads
        self.head_dim = embed_dim // total_heads
        self.kept_heads = [int(h) for h in kept_heads]
        self.num_heads = len(self.kept_heads)
        self.dropout = dropout
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.register_buffer("head_index", torch.tensor(self.kept_heads, dtype=torch.long), persistent=False)
        inner = self.num_heads * self.head_dim
        if self.num_heads:
            self.q_proj = nn.Linear(embed_dim, inner)
            self.k_proj = nn.Linear(embed_dim, inner)
            self.v_proj = nn.Linear(embed_dim, inner)
            self.gru_rel_pos_const = nn.Parameter(torch.ones(1, self.num_heads, 1, 1))
            self.gru_rel_pos_linear = nn.Linear(self.head_dim, 8)
        self.out_proj = _new_linear(inner, embed_dim)
        if has_relative_position_bias:
            self.rel_attn_embed = nn.Embedding(num_buckets, total_heads)

    def compute_bias(self, query_length: int, key_length: int) -> Tensor:
        from transformers.models.wavlm.modeling_wavlm import WavLMAttention

        return WavLMAttention.compute_bias(self, query_length, key_length)  # (total_heads, T, T)

    def _relative_positions_bucket(self, relative_positions: Tensor) -> Tensor:
        from transformers.models.wavlm.modeling_wavlm import WavLMAttention

        return WavLMAttention._relative_positions_bucket(self, relative_positions)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None,
                position_bias: Tensor | None = None, index: int = 0, **kwargs):
        bsz, tgt_len, _ = hidden_states.shape
        if position_bias is None and hasattr(self, "rel_attn_embed"):
            position_bias = self.compute_bias(tgt_len, tgt_len)
        if self.num_heads == 0:
            return self.out_proj.bias.expand(bsz, tgt_len, self.embed_dim), None, position_bias
        if position_bias is None or position_bias.shape[0] != self.total_heads:
            raise ModelError("pruned WavLM layers need the relative position bias of a pruned layer 0")
        h, dh = self.num_heads, self.head_dim
        chunks = hidden_states.view(bsz, tgt_len, self.total_heads, dh)[:, :, self.head_index].permute(0, 2, 1, 3)
        proj = self.gru_rel_pos_linear(chunks).view(bsz, h, tgt_len, 2, 4).sum(-1)
        gate_a, gate_b = torch.sigmoid(proj).chunk(2, dim=-1)
        gate = gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0               # (B, h, T, 1)
        bias = gate * position_bias[self.head_index].unsqueeze(0)                 # (B, h, T, T)
        if attention_mask is not None:
            pad = attention_mask.ne(1)[:, None, None, :]
            bias = bias.masked_fill(pad, float("-inf"))
        q = self.q_proj(hidden_states).view(bsz, tgt_len, h, dh).transpose(1, 2)
        k = self.k_proj(hidden_states).view(bsz, tgt_len, h, dh).transpose(1, 2)
        v = self.v_proj(hidden_states).view(bsz, tgt_len, h, dh).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                             dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(bsz, tgt_len, h * dh)
        return self.out_proj(out), None, position_bias


class ConstantAttention(nn.Module):
    """Attention block of a HuBERT / wav2vec2 layer with no head left: adds the out_proj bias."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = 0
        self.kept_heads: list[int] = []
        self.out_proj = _new_linear(0, embed_dim)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None, **kwargs):
        return self.out_proj.bias.expand(*hidden_states.shape[:-1], self.embed_dim), None


def _new_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """nn.Linear that may have 0 inputs or outputs (a fully pruned block), without the warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        return nn.Linear(in_features, out_features, bias=bias)


def _linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    out_f, in_f = weight.shape
    layer = _new_linear(in_f, out_f, bias=bias is not None)
    layer.weight.data.copy_(weight)
    if bias is not None:
        layer.bias.data.copy_(bias)
    return layer


def _head_rows(heads: list[int], head_dim: int, device=None) -> Tensor:
    if not heads:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim, device=device) for h in heads])


# -- structure ---------------------------------------------------------------------------------------
def _apply_structure(model: nn.Module, spec: dict) -> None:
    """Swap right-sized (randomly initialised) attention / FFN modules into a model built from
    the pruned config (whose conv_dim is already the pruned one)."""
    family = model_family(model)
    c = model.config
    d, total = int(c.hidden_size), int(c.num_attention_heads)
    dh = d // total
    layers = spec.get("layers")
    if not isinstance(layers, list) or len(layers) != len(model.encoder.layers):
        raise ModelError(f"{PRUNING_KEY} describes {len(layers) if isinstance(layers, list) else '?'} layers, "
                         f"the config has {len(model.encoder.layers)}")
    for l, (layer, ls) in enumerate(zip(model.encoder.layers, layers)):
        heads = [int(h) for h in ls.get("heads", [])]
        if any(h < 0 or h >= total for h in heads):
            raise ModelError(f"{PRUNING_KEY}: layer {l} has head numbers outside 0..{total - 1}")
        att = layer.attention
        if family == "wavlm":
            layer.attention = PrunedWavLMAttention(
                d, total, heads, dropout=float(c.attention_dropout), num_buckets=int(c.num_buckets),
                max_distance=int(c.max_bucket_distance), has_relative_position_bias=hasattr(att, "rel_attn_embed"))
        elif not heads:
            layer.attention = ConstantAttention(d)
        else:
            inner = len(heads) * dh
            bias = att.q_proj.bias is not None
            att.q_proj, att.k_proj, att.v_proj = (_new_linear(d, inner, bias=bias) for _ in range(3))
            att.out_proj = _new_linear(inner, d, bias=att.out_proj.bias is not None)
            att.num_heads = len(heads)
            att.kept_heads = heads
        ffn = layer.feed_forward
        m = int(ls.get("ffn", 0))
        if m < 0:
            raise ModelError(f"{PRUNING_KEY}: layer {l} has a negative FFN size")
        ffn.intermediate_dense = _new_linear(d, m)
        ffn.output_dense = _new_linear(m, d)


def is_pruned_config(config) -> bool:
    """True for a transformers config (or its dict) that describes a pruned model."""
    value = config.get(PRUNING_KEY) if isinstance(config, dict) else getattr(config, PRUNING_KEY, None)
    return isinstance(value, dict)


def build_pruned_model(config, **overrides) -> nn.Module:
    """Rebuild the pruned architecture (random weights) from a transformers config or config
    dict carrying `pixit_pruning`; load the weights with `load_state_dict` afterwards."""
    from transformers import AutoConfig, AutoModel

    if isinstance(config, dict):
        d = {k: v for k, v in config.items() if k != "transformers_version"}
        model_type = d.pop("model_type", None)
        if not model_type:
            raise ModelError("pruned SSL config has no model_type")
        config = AutoConfig.for_model(model_type, **d)
    else:
        config = copy.deepcopy(config)
    for k, v in overrides.items():
        setattr(config, k, v)
    spec = getattr(config, PRUNING_KEY, None)
    if not isinstance(spec, dict):
        raise ModelError(f"the SSL config has no {PRUNING_KEY} entry: not a pruned model")
    if int(spec.get("version", 1)) > SPEC_VERSION:
        raise ModelError(f"pruned SSL model format version {spec.get('version')} is newer than this program")
    model = AutoModel.from_config(config)
    _apply_structure(model, spec)
    return model.train(model.training)


def load_pruned(folder: str | Path, **overrides) -> nn.Module:
    """Load a pruned SSL model saved by `save_pruned` (eval mode, float32)."""
    from core.fileio import read_safetensors

    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{folder / CONFIG_NAME} cannot be read: {str(e).splitlines()[0]}") from None
    if not is_pruned_config(config):
        raise ModelError(f"{folder} is not a pruned SSL model (no {PRUNING_KEY} in {CONFIG_NAME})")
    model = build_pruned_model(config, **overrides)
    state = read_safetensors(folder / WEIGHTS_NAME)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise ModelError(f"{folder / WEIGHTS_NAME} does not match the pruned structure in {CONFIG_NAME}") from None
    return model.float().eval()


def is_pruned_folder(folder: str | Path) -> bool:
    """True for a folder written by `save_pruned` (cheap: reads config.json only)."""
    path = Path(folder) / CONFIG_NAME
    try:
        return is_pruned_config(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


def save_pruned(model: nn.Module, folder: str | Path, summary: dict | None = None) -> Path:
    """Write config.json (with pixit_pruning) + model.safetensors (+ pruning.json summary)."""
    from safetensors.torch import save_file

    from core.fileio import atomic_write_json

    if not is_pruned_config(model.config):
        raise ModelError("save_pruned expects a model returned by shrink()")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = folder / f".{WEIGHTS_NAME}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(folder / WEIGHTS_NAME)
    atomic_write_json(folder / CONFIG_NAME, model.config.to_dict())
    atomic_write_json(folder / SUMMARY_NAME, summary if summary is not None else describe(model))
    return folder


def describe(model: nn.Module) -> dict:
    """Kept units and sizes of a (pruned) model, for pruning.json and reports."""
    spec = getattr(model.config, PRUNING_KEY, None) or {}
    n = counts_of(model)
    original = spec.get("original", {})
    return {
        "family": model_family(model),
        "params": sum(p.numel() for p in model.parameters()),
        "original_params": original.get("params"),
        "conv_dim": n.conv,
        "original_conv_dim": original.get("conv_dim"),
        "heads": n.heads,
        "ffn": n.ffn,
        "original_heads": original.get("num_attention_heads"),
        "original_ffn": original.get("intermediate_size"),
        **{k: v for k, v in spec.items() if k in ("target", "target_sparsity", "sparsity", "macs_sparsity")},
    }


# -- shrinking -------------------------------------------------------------------------------------------
@torch.no_grad()
def shrink(gates: PruningGates, inplace: bool = False) -> nn.Module:
    """The model with only the units the eval masks keep, soft mask values folded in.

    Returns a transformers model without hooks or parametrizations; its config carries
    `pixit_pruning` (and the pruned conv_dim). With inplace=False the gated model is untouched
    (the gates are re-attached to it)."""
    masks = gates.eval_masks()
    was_attached = gates.attached
    gates.detach()
    original = gates.model
    model = original if inplace else copy.deepcopy(original)
    if was_attached and not inplace:
        gates.attach()
    arch: Arch = gates.arch

    _shrink_conv(model, arch, masks)
    layers_spec = []
    for l, layer in enumerate(model.encoder.layers):
        heads = _shrink_attention(model, layer, l, arch, masks)
        m = _shrink_ffn(layer, l, masks)
        layers_spec.append({"heads": heads, "ffn": m})

    original_info = {"conv_dim": list(arch.conv_dim), "num_attention_heads": arch.num_heads,
                     "intermediate_size": arch.intermediate, "params": arch.total_params}
    conv_dim = [int(layer.conv.out_channels) for layer in model.feature_extractor.conv_layers]
    model.config.conv_dim = conv_dim
    model.train(original.training)  # new modules are created in training mode (and on the CPU)
    ref = next(original.parameters())
    model.to(device=ref.device, dtype=ref.dtype)
    setattr(model.config, PRUNING_KEY, {"version": SPEC_VERSION, "layers": layers_spec, "original": original_info})
    return model


def _keep(mask: Tensor | None, n: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Indices of the kept units and their soft values (all units, value 1, without a gate),
    on the device / dtype of `like`."""
    if mask is None:
        return torch.arange(n, device=like.device), torch.ones(n, device=like.device, dtype=like.dtype)
    mask = mask.to(device=like.device, dtype=like.dtype)
    idx = torch.nonzero(mask > 0).flatten()
    return idx, mask[idx]


def _shrink_conv(model: nn.Module, arch: Arch, masks: dict[str, Tensor]) -> None:
    conv_layers = model.feature_extractor.conv_layers
    prev_idx, prev_scale = None, None
    for i, block in enumerate(conv_layers):
        conv = block.conv
        idx, scale = _keep(masks.get(f"conv_{i}"), conv.out_channels, conv.weight)
        w = conv.weight[idx]
        if prev_idx is not None:
            w = w[:, prev_idx] * prev_scale.to(w.dtype)[None, :, None]
        new = nn.Conv1d(w.shape[1], w.shape[0], kernel_size=conv.kernel_size, stride=conv.stride,
                        bias=conv.bias is not None)
        new.weight.data.copy_(w)
        if conv.bias is not None:
            new.bias.data.copy_(conv.bias[idx])
        block.conv = new
        norm = getattr(block, "layer_norm", None)
        if isinstance(norm, nn.GroupNorm) and len(idx) != norm.num_channels:
            gn = nn.GroupNorm(len(idx), len(idx), eps=norm.eps, affine=norm.affine)
            if norm.affine:
                gn.weight.data.copy_(norm.weight[idx])
                gn.bias.data.copy_(norm.bias[idx])
            block.layer_norm = gn
        elif isinstance(norm, nn.LayerNorm) and len(idx) != norm.normalized_shape[0]:
            raise ModelError("conv channels under a LayerNorm cannot be pruned exactly")
        block.in_conv_dim = w.shape[1]
        block.out_conv_dim = w.shape[0]
        full = len(idx) == conv.out_channels and bool(torch.all(scale == 1))
        prev_idx, prev_scale = (None, None) if full else (idx, scale)
    if prev_idx is not None:  # last conv gated: only allowed when the projection has no LayerNorm
        proj = model.feature_projection.projection
        if getattr(model.feature_projection, "layer_norm", None) is not None and arch.proj_layer_norm:
            raise ModelError("the last conv layer cannot be pruned before a LayerNorm")
        model.feature_projection.projection = _linear(proj.weight[:, prev_idx] * prev_scale[None, :], proj.bias)


def _shrink_attention(model: nn.Module, layer: nn.Module, l: int, arch: Arch, masks: dict[str, Tensor]) -> list[int]:
    att = layer.attention
    n = att.num_heads
    z_layer = masks.get(f"attlayer_{l}")
    z = float(z_layer[0]) if z_layer is not None else 1.0
    idx, scale = _keep(masks.get(f"head_{l}"), n, att.out_proj.weight)
    if z == 0.0:
        idx, scale = idx[:0], scale[:0]
    scale = scale * z
    dh = arch.head_dim
    rows = _head_rows(idx.tolist(), dh, att.out_proj.weight.device)
    col_scale = scale.repeat_interleave(dh)
    kept = idx.tolist()
    out_w = att.out_proj.weight[:, rows] * col_scale[None, :].to(att.out_proj.weight.dtype)
    out_b = att.out_proj.bias * z if att.out_proj.bias is not None else None

    if arch.family == "wavlm":
        new = PrunedWavLMAttention(arch.hidden, arch.num_heads, kept, dropout=float(att.dropout),
                                   num_buckets=att.num_buckets, max_distance=att.max_distance,
                                   has_relative_position_bias=hasattr(att, "rel_attn_embed"))
        if kept:
            for name in ("q_proj", "k_proj", "v_proj"):
                old = getattr(att, name)
                setattr(new, name, _linear(old.weight[rows], old.bias[rows]))
            new.gru_rel_pos_const.data.copy_(att.gru_rel_pos_const[:, idx])
            new.gru_rel_pos_linear = copy.deepcopy(att.gru_rel_pos_linear)
        new.out_proj = _linear(out_w, out_b)
        if hasattr(att, "rel_attn_embed"):
            new.rel_attn_embed = copy.deepcopy(att.rel_attn_embed)
        layer.attention = new
    elif not kept:
        new = ConstantAttention(arch.hidden)
        if out_b is not None:
            new.out_proj.bias.data.copy_(out_b)
        else:
            new.out_proj.bias.data.zero_()
        layer.attention = new
    else:
        for name in ("q_proj", "k_proj", "v_proj"):
            old = getattr(att, name)
            setattr(att, name, _linear(old.weight[rows], old.bias[rows] if old.bias is not None else None))
        att.out_proj = _linear(out_w, out_b)
        att.num_heads = len(kept)
        att.kept_heads = kept
    return kept


def _shrink_ffn(layer: nn.Module, l: int, masks: dict[str, Tensor]) -> int:
    ffn = layer.feed_forward
    inter, out = ffn.intermediate_dense, ffn.output_dense
    z_layer = masks.get(f"ffnlayer_{l}")
    z = float(z_layer[0]) if z_layer is not None else 1.0
    idx, scale = _keep(masks.get(f"ffn_{l}"), inter.out_features, out.weight)
    if z == 0.0:
        idx, scale = idx[:0], scale[:0]
    ffn.intermediate_dense = _linear(inter.weight[idx], inter.bias[idx] if inter.bias is not None else None)
    ffn.output_dense = _linear(out.weight[:, idx] * (scale * z).to(out.weight.dtype)[None, :],
                               out.bias * z if out.bias is not None else None)
    return len(idx)
