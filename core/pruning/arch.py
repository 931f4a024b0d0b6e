"""Prunable structure of a transformers SSL speech model (WavLM, HuBERT, wav2vec2) and its size.

`Arch.from_model(model)` reads the shapes once from the unpruned model: conv kernels/strides and
channels, hidden size, heads, FFN sizes. `Arch.params(counts)` and `Arch.macs(counts)` give the
model size for any unit counts -- plain ints (hard counts of a pruned model) or torch tensors
(differentiable expected counts from hard-concrete gates), with the same formula, so the
Lagrangian target and the size of the physically shrunk model agree.

Prunable units (what a gate removes):
- conv channel c of feature-encoder layer i: the rows of conv i and its per-channel GroupNorm
  (layer 0 of "group" encoders), and the input columns of conv i+1 (or of the feature
  projection Linear when the last conv is pruned; only when that projection has no LayerNorm,
  since a LayerNorm over channels cannot be sliced exactly);
- attention head h of layer l: q/k/v rows + biases, out_proj columns (+ WavLM's per-head GRU
  constant); a layer left with no head also loses WavLM's gru_rel_pos_linear;
- FFN unit j of layer l: intermediate_dense row + bias, output_dense column.
The residual width (hidden_size), layer norms, the positional conv and all biases of out_proj /
output_dense are never pruned ("fixed").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from core.errors import ModelError

SUPPORTED = ("wavlm", "hubert", "wav2vec2")


def model_family(model: nn.Module) -> str:
    """'wavlm' | 'hubert' | 'wav2vec2' for a transformers base model, else ModelError."""
    config = getattr(model, "config", None)
    family = getattr(config, "model_type", None)
    if family not in SUPPORTED or not hasattr(model, "feature_extractor") or not hasattr(model, "encoder"):
        raise ModelError(f"structured pruning supports {', '.join(SUPPORTED)} base models, not {family or type(model).__name__}")
    return family


def conv_frames(num_samples: int, kernels: list[int], strides: list[int]) -> list[int]:
    """Output length of every feature-encoder conv layer for `num_samples` input samples."""
    out, n = [], num_samples
    for k, s in zip(kernels, strides):
        n = max(0, (n - k) // s + 1)
        out.append(n)
    return out


@dataclass
class Counts:
    """Kept units: conv channels per conv layer, heads / FFN units per encoder layer, and the
    probability (or 0/1) that a layer keeps any head ("att_any"). Values are ints or tensors."""

    conv: list
    heads: list
    ffn: list
    att_any: list


@dataclass
class Arch:
    family: str
    hidden: int
    num_heads: int
    head_dim: int
    num_layers: int
    intermediate: int
    conv_dim: list[int]
    conv_kernel: list[int]
    conv_stride: list[int]
    conv_bias: bool
    conv_norm: list[str]                 # per conv layer: "group" | "layer" | "none"
    proj_layer_norm: bool                # feature projection starts with a LayerNorm(conv_dim[-1])
    pos_conv_kernel: int
    pos_conv_groups: int
    total_params: int                    # numel of the unpruned model
    prunable_conv: list[bool] = field(default_factory=list)   # which conv layers may be gated

    @classmethod
    def from_model(cls, model: nn.Module) -> "Arch":
        family = model_family(model)
        c = model.config
        conv_layers = model.feature_extractor.conv_layers
        norms = []
        for layer in conv_layers:
            norm = getattr(layer, "layer_norm", None)
            norms.append("group" if isinstance(norm, nn.GroupNorm) else "layer" if isinstance(norm, nn.LayerNorm) else "none")
        proj_ln = getattr(model.feature_projection, "layer_norm", None) is not None and (
            family != "hubert" or bool(getattr(model.feature_projection, "feat_proj_layer_norm", True)))
        arch = cls(
            family=family,
            hidden=int(c.hidden_size),
            num_heads=int(c.num_attention_heads),
            head_dim=int(c.hidden_size) // int(c.num_attention_heads),
            num_layers=len(model.encoder.layers),
            intermediate=int(c.intermediate_size),
            conv_dim=[int(layer.conv.out_channels) for layer in conv_layers],
            conv_kernel=[int(layer.conv.kernel_size[0]) for layer in conv_layers],
            conv_stride=[int(layer.conv.stride[0]) for layer in conv_layers],
            conv_bias=conv_layers[0].conv.bias is not None,
            conv_norm=norms,
            proj_layer_norm=proj_ln,
            pos_conv_kernel=int(c.num_conv_pos_embeddings),
            pos_conv_groups=int(c.num_conv_pos_embedding_groups),
            total_params=sum(p.numel() for p in model.parameters()),
        )
        # A channel can be removed exactly only if nothing normalises across channels after it:
        # per-channel GroupNorm or no norm in this layer, and the next consumer is a conv (or the
        # projection Linear without LayerNorm).
        n = len(conv_layers)
        arch.prunable_conv = [
            norms[i] != "layer" and (i < n - 1 or not proj_ln) for i in range(n)
        ]
        return arch

    # -- per-unit sizes ---------------------------------------------------------------------
    @property
    def head_params(self) -> int:
        """q, k, v rows (+bias) and out_proj columns of one head (+ WavLM's GRU constant)."""
        dh, d = self.head_dim, self.hidden
        return 4 * d * dh + 3 * dh + (1 if self.family == "wavlm" else 0)

    @property
    def att_layer_params(self) -> int:
        """Parameters an attention layer loses only when it keeps no head (WavLM GRU linear)."""
        return (self.head_dim * 8 + 8) if self.family == "wavlm" else 0

    @property
    def ffn_unit_params(self) -> int:
        return 2 * self.hidden + 1

    def full_counts(self) -> Counts:
        return Counts(conv=list(self.conv_dim), heads=[self.num_heads] * self.num_layers,
                      ffn=[self.intermediate] * self.num_layers, att_any=[1] * self.num_layers)

    # -- sizes --------------------------------------------------------------------------------
    def prunable_params(self, n: Counts):
        total = 0
        prev = 1
        for i, (k, ch) in enumerate(zip(self.conv_kernel, n.conv)):
            total = total + k * prev * ch
            if self.conv_bias:
                total = total + ch
            if self.conv_norm[i] != "none":
                total = total + 2 * ch
            prev = ch
        if self.proj_layer_norm:
            total = total + 2 * prev
        total = total + prev * self.hidden               # projection weight (its bias is fixed)
        for h, m, anyh in zip(n.heads, n.ffn, n.att_any):
            total = total + h * self.head_params + anyh * self.att_layer_params + m * self.ffn_unit_params
        return total

    @property
    def fixed_params(self) -> int:
        return self.total_params - int(self.prunable_params(self.full_counts()))

    def params(self, n: Counts):
        """Parameter count of the model with these kept units (int or differentiable tensor)."""
        return self.fixed_params + self.prunable_params(n)

    def macs(self, n: Counts, seconds: float = 5.0, sample_rate: int = 16000):
        """Multiply-accumulates per second of audio, for chunks of `seconds` (attention is
        quadratic in the chunk length). Norms, activations and softmax are not counted."""
        frames = conv_frames(int(round(seconds * sample_rate)), self.conv_kernel, self.conv_stride)
        total = 0
        prev = 1
        for k, ch, t in zip(self.conv_kernel, n.conv, frames):
            total = total + t * k * prev * ch
            prev = ch
        t = frames[-1]
        d, dh = self.hidden, self.head_dim
        total = total + t * prev * d                                          # projection
        total = total + t * d * (d // self.pos_conv_groups) * self.pos_conv_kernel   # positional conv
        gru = 8 * t * dh if self.family == "wavlm" else 0
        for h, m in zip(n.heads, n.ffn):
            total = total + h * (4 * t * d * dh + 2 * t * t * dh + gru) + m * (2 * t * d)
        return total / seconds

    def size(self, n: Counts, target: str = "params", seconds: float = 5.0):
        if target == "params":
            return self.params(n)
        if target == "macs":
            return self.macs(n, seconds)
        raise ModelError(f"pruning target must be 'params' or 'macs', got {target!r}")

    def full_size(self, target: str = "params", seconds: float = 5.0) -> float:
        return float(self.size(self.full_counts(), target, seconds))


def counts_of(model: nn.Module) -> Counts:
    """Hard unit counts of an (unpruned, or shrunk by core.pruning) transformers model."""
    conv = [int(layer.conv.out_channels) for layer in model.feature_extractor.conv_layers]
    heads, ffn = [], []
    for layer in model.encoder.layers:
        att = layer.attention
        if hasattr(att, "kept_heads"):
            heads.append(len(att.kept_heads))
        else:
            heads.append(int(att.num_heads))
        ffn.append(int(layer.feed_forward.intermediate_dense.out_features))
    return Counts(conv=conv, heads=heads, ffn=ffn, att_any=[int(h > 0) for h in heads])
