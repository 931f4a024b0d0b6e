"""Mask estimation networks ("maskers") for the ToTaToNet separator.

Every masker maps an encoded mixture (B, in_channels, L) to masks (B, n_sources, out_channels, L)
so the joint model can swap them freely (`build_masker`). All of them handle any length L: the
dual-path ones pad L to their chunk grid and crop the result back.

- "dprnn": dual-path BiLSTM (Luo et al. 2020), the PixIT paper's masker.
- "convtasnet": temporal convolutional network (Luo & Mesgarani 2019).
- "sepformer": dual-path transformer (intra-chunk + inter-chunk transformer layers).
- "spgm": single-path global modulation (Yip et al. 2024): intra-chunk transformer layers; the
  inter-chunk path is replaced by a pooled per-utterance vector e that modulates the features,
  out = sigmoid(W_s e) * x + (W_g e) * x. Pooling is done per batch item (SpeechBrain's reference
  pools across the whole batch, which mixes the items of a batch).

Written from the papers in plain torch. The dual-path layout follows asteroid's DPRNN operation
for operation (gLN + 1x1 bottleneck, chunking padded by chunk_size on both sides, blocks,
PReLU + Conv2d to n_sources, overlap-add by summation, tanh * sigmoid gate, 1x1 mask conv), so
pyannote/asteroid DPRNN weights map one to one onto `DPRNN`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
import torch.nn.functional as F

__all__ = ["build_masker", "MASKERS", "GlobalLayerNorm", "DPRNN", "ConvTasNet", "SepFormer", "SPGM"]


# ---------------------------------------------------------------------------------------------
# Normalisation and activation helpers
# ---------------------------------------------------------------------------------------------
class GlobalLayerNorm(nn.Module):
    """gLN: normalise over channels and all time axes, per batch item (never across the batch)."""

    def __init__(self, channels: int, eps: float = 1e-8):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:  # x: (B, C, *)
        dims = tuple(range(1, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        var = (x - mean).pow(2).mean(dim=dims, keepdim=True)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - mean) / torch.sqrt(var + self.eps) * self.gamma.view(shape) + self.beta.view(shape)


class ChannelLayerNorm(nn.Module):
    """cLN: LayerNorm over channels only, independently at every time step."""

    def __init__(self, channels: int, eps: float = 1e-8):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, C, *)
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def make_norm(kind: str, channels: int) -> nn.Module:
    """Build a normalisation layer by name ("gLN", "cLN" or "none")."""
    if kind == "gLN":
        return GlobalLayerNorm(channels)
    if kind == "cLN":
        return ChannelLayerNorm(channels)
    if kind in ("none", None):
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: expected gLN, cLN or none")


def make_mask_activation(kind: str) -> nn.Module:
    """Mask non-linearity: "relu" (asteroid DPRNN default) or "sigmoid"."""
    if kind == "relu":
        return nn.ReLU()
    if kind == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"unknown mask activation {kind!r}: expected relu or sigmoid")


# ---------------------------------------------------------------------------------------------
# Chunking for dual-path models
# ---------------------------------------------------------------------------------------------
def chunk(x: Tensor, chunk_size: int, hop: int) -> Tensor:
    """(B, N, L) -> (B, N, S, chunk_size) overlapping chunks. As in asteroid's DPRNN, L is
    zero-padded by chunk_size on both sides, so with hop = chunk_size / 2 every frame lies in
    exactly two chunks, and S = (L + chunk_size) // hop + 1."""
    b, n, length = x.shape
    cols = F.unfold(x.unsqueeze(-1), kernel_size=(chunk_size, 1), padding=(chunk_size, 0), stride=(hop, 1))
    return cols.reshape(b, n, chunk_size, -1).transpose(2, 3)


def overlap_add(chunks: Tensor, length: int, hop: int) -> Tensor:
    """Inverse of `chunk`: (B, N, S, K) -> (B, N, length), summing overlapping chunks (asteroid)."""
    b, n, s, k = chunks.shape
    cols = chunks.transpose(2, 3).reshape(b, n * k, s)
    out = F.fold(cols, output_size=(length, 1), kernel_size=(k, 1), padding=(k, 0), stride=(hop, 1))
    return out.reshape(b, n, length)


# ---------------------------------------------------------------------------------------------
# Dual-path skeleton: bottleneck -> chunk -> blocks -> per-source heads -> overlap-add -> masks
# ---------------------------------------------------------------------------------------------
class DualPathMasker(nn.Module):
    """Shared skeleton of DPRNN / SepFormer / SPGM; subclasses provide `self.blocks`, a list of
    modules mapping (B, N, S, K) -> (B, N, S, K)."""

    def __init__(self, in_channels: int, n_sources: int, out_channels: int, bn_chan: int,
                 chunk_size: int, hop: int, norm: str, mask_act: str):
        super().__init__()
        self.in_channels, self.n_sources, self.out_channels = in_channels, n_sources, out_channels
        self.bn_chan, self.chunk_size, self.hop = bn_chan, chunk_size, hop
        self.input_norm = make_norm(norm, in_channels)
        self.bottleneck = nn.Conv1d(in_channels, bn_chan, 1)
        self.blocks = nn.ModuleList()
        self.first_out = nn.Sequential(nn.PReLU(), nn.Conv2d(bn_chan, n_sources * bn_chan, 1))
        self.gate_tanh = nn.Sequential(nn.Conv1d(bn_chan, bn_chan, 1), nn.Tanh())
        self.gate_sigmoid = nn.Sequential(nn.Conv1d(bn_chan, bn_chan, 1), nn.Sigmoid())
        self.mask_conv = nn.Conv1d(bn_chan, out_channels, 1, bias=False)
        self.mask_act = make_mask_activation(mask_act)

    def forward(self, x: Tensor) -> Tensor:
        b, _, length = x.shape
        y = self.bottleneck(self.input_norm(x))  # (B, N, L)
        y = chunk(y, self.chunk_size, self.hop)  # (B, N, S, K)
        for block in self.blocks:
            y = block(y)
        y = self.first_out(y)  # (B, n_src*N, S, K)
        s, k = y.shape[-2:]
        y = y.reshape(b * self.n_sources, self.bn_chan, s, k)
        y = overlap_add(y, length, self.hop)  # (B*n_src, N, L)
        y = self.gate_tanh(y) * self.gate_sigmoid(y)
        masks = self.mask_act(self.mask_conv(y))
        return masks.reshape(b, self.n_sources, self.out_channels, length)


class _RNNPath(nn.Module):
    """One DPRNN path: BiLSTM along one chunk axis, linear projection, norm, residual."""

    def __init__(self, n: int, hid: int, norm: str, axis: str, rnn_type: str = "LSTM",
                 bidirectional: bool = True, dropout: float = 0.0):
        super().__init__()
        rnn_cls = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[rnn_type]
        self.axis = axis
        self.rnn = rnn_cls(n, hid, batch_first=True, bidirectional=bidirectional)
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(hid * (2 if bidirectional else 1), n)
        self.norm = make_norm(norm, n)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, S, K)
        b, n, s, k = x.shape
        if self.axis == "intra":  # sequences along K, one per chunk
            seq = x.permute(0, 2, 3, 1).reshape(b * s, k, n)
        else:  # inter: sequences along S, one per position in the chunk
            seq = x.permute(0, 3, 2, 1).reshape(b * k, s, n)
        out = self.linear(self.drop(self.rnn(seq)[0]))
        if self.axis == "intra":
            out = out.reshape(b, s, k, n).permute(0, 3, 1, 2)
        else:
            out = out.reshape(b, k, s, n).permute(0, 3, 2, 1)
        return x + self.norm(out)


class DPRNN(DualPathMasker):
    """Dual-path RNN masker (paper defaults: chunk 100, hop 50, bn/hid 128, 6 repeats, gLN)."""

    def __init__(self, in_channels: int, n_sources: int, out_channels: int, bn_chan: int = 128,
                 hid_size: int = 128, chunk_size: int = 100, hop: int = 50, n_repeats: int = 6,
                 norm: str = "gLN", mask_act: str = "relu", rnn_type: str = "LSTM",
                 bidirectional: bool = True, dropout: float = 0.0):
        super().__init__(in_channels, n_sources, out_channels, bn_chan, chunk_size, hop, norm, mask_act)
        for _ in range(n_repeats):
            self.blocks.append(nn.Sequential(
                _RNNPath(bn_chan, hid_size, norm, "intra", rnn_type, True, dropout),
                _RNNPath(bn_chan, hid_size, norm, "inter", rnn_type, bidirectional, dropout),
            ))


# ---------------------------------------------------------------------------------------------
# Transformer paths (SepFormer, SPGM)
# ---------------------------------------------------------------------------------------------
def sinusoidal_positions(length: int, dim: int, device, dtype) -> Tensor:
    """Standard sinusoidal positional encoding (length, dim)."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe.to(dtype)


class TransformerStack(nn.Module):
    """Pre-norm transformer encoder layers with sinusoidal positions, on (batch, seq, dim)."""

    def __init__(self, dim: int, n_layers: int, n_heads: int, ffn: int, dropout: float,
                 positional: bool = True):
        super().__init__()
        self.positional = positional
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, n_heads, ffn, dropout, activation="relu",
                                       batch_first=True, norm_first=True)
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        if self.positional:
            x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class _TransformerPath(nn.Module):
    """SepFormer path: transformer along one chunk axis, channel LayerNorm, residual."""

    def __init__(self, n: int, axis: str, n_layers: int, n_heads: int, ffn: int, dropout: float):
        super().__init__()
        self.axis = axis
        self.transformer = TransformerStack(n, n_layers, n_heads, ffn, dropout)
        self.norm = ChannelLayerNorm(n)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, S, K)
        b, n, s, k = x.shape
        if self.axis == "intra":
            out = self.transformer(x.permute(0, 2, 3, 1).reshape(b * s, k, n))
            out = out.reshape(b, s, k, n).permute(0, 3, 1, 2)
        else:
            out = self.transformer(x.permute(0, 3, 2, 1).reshape(b * k, s, n))
            out = out.reshape(b, k, s, n).permute(0, 3, 2, 1)
        return x + self.norm(out)


class SepFormer(DualPathMasker):
    """Dual-path transformer masker (SepFormer-style; smaller defaults than the 8 kHz recipe)."""

    def __init__(self, in_channels: int, n_sources: int, out_channels: int, bn_chan: int = 128,
                 chunk_size: int = 100, hop: int = 50, n_repeats: int = 2, intra_layers: int = 2,
                 inter_layers: int = 2, n_heads: int = 4, ffn: int = 512, dropout: float = 0.0,
                 norm: str = "gLN", mask_act: str = "relu"):
        super().__init__(in_channels, n_sources, out_channels, bn_chan, chunk_size, hop, norm, mask_act)
        for _ in range(n_repeats):
            self.blocks.append(nn.Sequential(
                _TransformerPath(bn_chan, "intra", intra_layers, n_heads, ffn, dropout),
                _TransformerPath(bn_chan, "inter", inter_layers, n_heads, ffn, dropout),
            ))


class GlobalModulation(nn.Module):
    """SPGM inter path: pool the whole utterance of each batch item into e (N,), then
    out = sigmoid(W_s e) * x + (W_g e) * x, followed by channel LayerNorm and a residual.

    pool: "att" (softmax attention over the positions of each chunk, then mean over chunks, as in
    the paper), "avg" or "max". Statistics never cross batch items."""

    def __init__(self, n: int, pool: str = "att"):
        super().__init__()
        if pool not in ("att", "avg", "max"):
            raise ValueError(f"unknown SPGM pooling {pool!r}: expected att, avg or max")
        self.pool = pool
        self.att = nn.Linear(n, 1) if pool == "att" else None
        self.w_s = nn.Linear(n, n)
        self.w_g = nn.Linear(n, n)
        self.norm = ChannelLayerNorm(n)

    def pooled(self, x: Tensor) -> Tensor:
        """(B, N, S, K) -> e (B, N): one global vector per batch item."""
        h = x.permute(0, 2, 3, 1)  # (B, S, K, N)
        if self.pool == "att":
            a = torch.softmax(self.att(h), dim=2)  # attention over positions within each chunk
            return (a * h).sum(dim=2).mean(dim=1)  # (B, N): mean over chunks
        if self.pool == "avg":
            return h.mean(dim=(1, 2))
        return h.amax(dim=(1, 2))

    def forward(self, x: Tensor) -> Tensor:  # (B, N, S, K)
        e = self.pooled(x)
        scale = torch.sigmoid(self.w_s(e)) + self.w_g(e)  # (B, N)
        out = x * scale[:, :, None, None]
        return x + self.norm(out)


class SPGM(DualPathMasker):
    """Single-path global modulation masker: intra-chunk transformers + per-item global modulation."""

    def __init__(self, in_channels: int, n_sources: int, out_channels: int, bn_chan: int = 128,
                 chunk_size: int = 100, hop: int = 50, n_repeats: int = 2, intra_layers: int = 2,
                 n_heads: int = 4, ffn: int = 512, dropout: float = 0.0, pool: str = "att",
                 norm: str = "gLN", mask_act: str = "relu"):
        super().__init__(in_channels, n_sources, out_channels, bn_chan, chunk_size, hop, norm, mask_act)
        for _ in range(n_repeats):
            self.blocks.append(nn.Sequential(
                _TransformerPath(bn_chan, "intra", intra_layers, n_heads, ffn, dropout),
                GlobalModulation(bn_chan, pool),
            ))


# ---------------------------------------------------------------------------------------------
# Conv-TasNet TCN
# ---------------------------------------------------------------------------------------------
class _TCNBlock(nn.Module):
    """1x1 conv -> PReLU -> norm -> dilated depthwise conv -> PReLU -> norm -> residual/skip."""

    def __init__(self, bn_chan: int, hid_chan: int, skip_chan: int, kernel: int, dilation: int, norm: str):
        super().__init__()
        pad = (kernel - 1) * dilation // 2
        self.net = nn.Sequential(
            nn.Conv1d(bn_chan, hid_chan, 1), nn.PReLU(), make_norm(norm, hid_chan),
            nn.Conv1d(hid_chan, hid_chan, kernel, padding=pad, dilation=dilation, groups=hid_chan),
            nn.PReLU(), make_norm(norm, hid_chan),
        )
        self.res = nn.Conv1d(hid_chan, bn_chan, 1)
        self.skip = nn.Conv1d(hid_chan, skip_chan, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(x)
        return x + self.res(h), self.skip(h)


class ConvTasNet(nn.Module):
    """Conv-TasNet temporal convolutional masker (asteroid TDConvNet defaults)."""

    def __init__(self, in_channels: int, n_sources: int, out_channels: int, bn_chan: int = 128,
                 hid_chan: int = 512, skip_chan: int = 128, conv_kernel: int = 3, n_blocks: int = 8,
                 n_repeats: int = 3, norm: str = "gLN", mask_act: str = "relu"):
        super().__init__()
        if conv_kernel % 2 != 1:
            raise ValueError("convtasnet conv_kernel must be odd")
        self.n_sources, self.out_channels = n_sources, out_channels
        self.input_norm = make_norm(norm, in_channels)
        self.bottleneck = nn.Conv1d(in_channels, bn_chan, 1)
        self.blocks = nn.ModuleList(
            _TCNBlock(bn_chan, hid_chan, skip_chan, conv_kernel, 2**i, norm)
            for _ in range(n_repeats) for i in range(n_blocks)
        )
        self.mask_conv = nn.Sequential(nn.PReLU(), nn.Conv1d(skip_chan, n_sources * out_channels, 1))
        self.mask_act = make_mask_activation(mask_act)

    def forward(self, x: Tensor) -> Tensor:
        b, _, length = x.shape
        y = self.bottleneck(self.input_norm(x))
        skip = 0.0
        for block in self.blocks:
            y, s = block(y)
            skip = skip + s
        masks = self.mask_act(self.mask_conv(skip))
        return masks.reshape(b, self.n_sources, self.out_channels, length)


MASKERS: dict[str, type[nn.Module]] = {
    "dprnn": DPRNN,
    "convtasnet": ConvTasNet,
    "sepformer": SepFormer,
    "spgm": SPGM,
}


def build_masker(name: str, in_channels: int, n_sources: int, out_channels: int, **params) -> nn.Module:
    """Build a masker by name; its forward maps (B, in_channels, L) -> (B, n_sources, out_channels, L)."""
    if name not in MASKERS:
        raise ValueError(f"unknown masker {name!r}: expected one of {', '.join(MASKERS)}")
    return MASKERS[name](in_channels, n_sources, out_channels, **params)
