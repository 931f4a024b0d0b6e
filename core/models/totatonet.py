"""ToTaToNet: the joint speaker diarization + speech separation model of PixIT (Kalda et al. 2024).

Everything about the joint model lives in this one file (the maskers and the SSL front end are
interchangeable parts, see maskers.py and ssl.py). For a batch of 16 kHz waveforms (B, T):

    waveform (B, T) ─┬─► encoder: Conv1d(1, n_filters, kernel, stride, bias=False) + ReLU
                     │        (ReLU optional: encoder_activation="none" as in pyannote)
                     │        └─► tf (B, n_filters, L)                        (L encoder frames)
                     └─► [optional] SSL front end (WavLM / HuBERT / wav2vec2 / w2v-BERT 2.0)
                              softmax-weighted sum of all hidden layers (B, D, L_ssl) at 50 Hz
                              └─► Linear(D, proj) AT 50 Hz (20x cheaper than after upsampling;
                                  proj_dim=0 skips it and concatenates the raw features)
                                  └─► nearest upsampling to the L encoder frames (B, proj, L)
    masker input = concat(tf, ssl) (or tf + ssl with ssl_combine="add")
    masker (dprnn | convtasnet | sepformer | spgm) ─► masks (B, K, n_filters, L)
    masked = masks * tf                                                  (B, K, n_filters, L)
      ├─► decoder: ConvTranspose1d(n_filters, 1, kernel, stride, bias=False) per source
      │       └─► sources (B, K, T)        (cropped to the input length T)
      └─► diarization head per source, SHARED weights across sources:
              AvgPool1d(diar_pool) ─► diar_layers x [Linear(., diar_hidden) + LeakyReLU]
              ─► Linear(., 1) ─► sigmoid ─► activations (B, K, F)

Activation k is computed from masked source k only, so speaker k and source k are the same
speaker by construction (PIT on the diarization loss then also permutes the sources).
Diarization frame f covers samples [f * frame_step, f * frame_step + frame_size), with
frame_step = stride * diar_pool and frame_size = kernel_size + (diar_pool - 1) * stride
(paper: 128 samples = 8 ms step, 125 frames per second, 624 frames per 5 s chunk).

A saved model is a folder with config.json (ToTaToNetConfig + format/version; for SSL models
also the full transformers config of the SSL network) and model.safetensors (all weights,
SSL included), so loading never downloads anything nor needs the original SSL folder.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from core.errors import ModelError
from core.fileio import publish, read_safetensors
from core.models.maskers import build_masker

__all__ = ["ToTaToNetConfig", "ToTaToNet", "load_folder", "count_parameters",
           "FORMAT_NAME", "FORMAT_VERSION", "CONFIG_NAME", "WEIGHTS_NAME"]

FORMAT_NAME = "pixit-totatonet"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class ToTaToNetConfig:
    """Hyperparameters of a ToTaToNet (JSON-serialisable; stored in config.json)."""

    sample_rate: int = 16000
    n_sources: int = 3  # K_max
    n_filters: int = 64  # encoder/decoder: learned Conv1d filterbank
    kernel_size: int = 32
    stride: int = 16
    masker: str = "dprnn"  # "dprnn" | "convtasnet" | "sepformer" | "spgm"
    masker_params: dict = field(default_factory=dict)  # e.g. bn_chan, hid_size, chunk_size, hop, n_repeats
    diar_pool: int = 8  # encoder frames averaged per diarization frame
    diar_hidden: int = 64
    diar_layers: int = 2
    # SSL front end (see ssl.py), None = no SSL features. ToTaToNet also reads three keys of it:
    # "proj_dim": width of the Linear projection applied at 50 Hz (default: masker bn_chan, else
    #     128); 0 = no projection, the raw D-dim features are upsampled and concatenated (pyannote);
    # "combine": "concat" (paper) or "add" (projected features added to the encoder output);
    # "upsample": "nearest" (SSL frame whose 320-sample hop contains the encoder frame's centre,
    #     last frame repeated at the end) or "repeat" (pyannote: each SSL frame repeated
    #     hop/stride times from frame 0, zeros at the end).
    ssl: dict | None = None
    encoder_activation: str = "relu"  # "relu" or "none" (pyannote's asteroid encoder is linear)

    def to_dict(self) -> dict:
        """Plain dict (deep copy) for JSON."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "ToTaToNetConfig":
        """Inverse of to_dict; ignores format/version keys, rejects unknown keys."""
        if not isinstance(d, dict):
            raise ModelError("model config must be a JSON object")
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k not in ("format", "version")}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**json.loads(json.dumps(d)))


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (to report model size)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class DiarizationHead(nn.Module):
    """Per-source VAD head on a masked representation: pool -> MLP -> sigmoid (shared over sources)."""

    def __init__(self, in_channels: int, pool: int, hidden: int, n_layers: int):
        super().__init__()
        self.pool = pool
        layers: list[nn.Module] = []
        width = in_channels
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU()]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(width, 1)

    def forward(self, masked: Tensor) -> Tensor:
        """(B, K, C, L) -> (B, K, L // pool) in [0, 1]; each source processed on its own."""
        b, k, c, length = masked.shape
        n_frames = length // self.pool
        # AvgPool1d(pool, pool) written as a reshape so that L < pool gives 0 frames, not an error
        x = masked[..., : n_frames * self.pool].reshape(b, k, c, n_frames, self.pool).mean(-1)
        x = x.permute(0, 1, 3, 2)  # (B, K, F, C)
        return torch.sigmoid(self.out(self.mlp(x))).squeeze(-1)


# what fine-tuning updates (the rest is frozen): everything; the diarization head, the masker's last
# block and its output layers ("late": a few minutes of corrections move the decisions, not the
# features); the diarization head alone
UPDATE_PARTS = ("all", "late", "diarization")


class ToTaToNet(nn.Module):
    """Joint diarization + separation: (B, T) -> sources (B, K, T), activations (B, K, F)."""

    def __init__(self, config: ToTaToNetConfig | dict | None = None):
        super().__init__()
        if config is None:
            config = ToTaToNetConfig()
        elif isinstance(config, dict):
            config = ToTaToNetConfig.from_dict(config)
        else:
            config = ToTaToNetConfig.from_dict(config.to_dict())  # private copy
        self.config = config
        c = config
        for name in ("n_sources", "n_filters", "kernel_size", "stride", "diar_pool"):
            if not isinstance(getattr(c, name), int) or getattr(c, name) < 1:
                raise ModelError(f"model config {name} must be a positive integer, got {getattr(c, name)!r}")

        self.encoder = nn.Conv1d(1, c.n_filters, c.kernel_size, c.stride, bias=False)
        self.decoder = nn.ConvTranspose1d(c.n_filters, 1, c.kernel_size, c.stride, bias=False)

        masker_in = c.n_filters
        self.ssl = None
        self.ssl_proj = None
        self.ssl_combine = "concat"
        self.ssl_upsample = "nearest"
        if c.ssl is not None:
            from core.models.ssl import SSLFrontEnd  # transformers is imported only when needed

            self.ssl = SSLFrontEnd(c.ssl)
            ssl_cfg = self.ssl.config_dict()
            proj_dim = ssl_cfg.get("proj_dim")
            proj_dim = int(c.masker_params.get("bn_chan", 128) if proj_dim is None else proj_dim)
            self.ssl_combine = ssl_cfg.get("combine", "concat")
            self.ssl_upsample = ssl_cfg.get("upsample", "nearest")
            if self.ssl_combine not in ("concat", "add"):
                raise ModelError(f"ssl combine must be 'concat' or 'add', got {self.ssl_combine!r}")
            if self.ssl_upsample not in ("nearest", "repeat"):
                raise ModelError(f"ssl upsample must be 'nearest' or 'repeat', got {self.ssl_upsample!r}")
            if self.ssl_combine == "add":
                proj_dim = c.n_filters
            if proj_dim > 0:
                self.ssl_proj = nn.Linear(self.ssl.hidden_size, proj_dim)
            if self.ssl_combine == "concat":
                masker_in += proj_dim if proj_dim > 0 else self.ssl.hidden_size
            elif proj_dim == 0 and self.ssl.hidden_size != c.n_filters:
                raise ModelError("ssl combine 'add' needs a projection (proj_dim > 0)")
            ssl_cfg.update(proj_dim=proj_dim, combine=self.ssl_combine, upsample=self.ssl_upsample)
            c.ssl = ssl_cfg  # resolved: includes the transformers config for rebuilding offline
        if c.encoder_activation not in ("relu", "none"):
            raise ModelError(f"encoder_activation must be 'relu' or 'none', got {c.encoder_activation!r}")

        try:
            self.masker = build_masker(c.masker, masker_in, c.n_sources, c.n_filters, **c.masker_params)
        except (TypeError, ValueError) as e:
            raise ModelError(f"bad masker settings ({c.masker}): {e}") from None
        self.diarization = DiarizationHead(c.n_filters, c.diar_pool, c.diar_hidden, c.diar_layers)

    # -- geometry --------------------------------------------------------------------------
    @property
    def frame_step(self) -> int:
        """Samples between two diarization frames."""
        return self.config.stride * self.config.diar_pool

    @property
    def frame_size(self) -> int:
        """Samples covered by one diarization frame."""
        return self.config.kernel_size + (self.config.diar_pool - 1) * self.config.stride

    def _padded_length(self, num_samples: int) -> int:
        """Input length padded so the encoder frames cover every sample."""
        k, s = self.config.kernel_size, self.config.stride
        if num_samples <= k:
            return k
        return k + math.ceil((num_samples - k) / s) * s

    def num_encoder_frames(self, num_samples: int) -> int:
        """Encoder frames L for an input of num_samples samples."""
        return (self._padded_length(num_samples) - self.config.kernel_size) // self.config.stride + 1

    def num_frames(self, num_samples: int) -> int:
        """Diarization frames F for an input of num_samples samples (624 for 5 s, paper setup)."""
        return self.num_encoder_frames(num_samples) // self.config.diar_pool

    # -- forward ---------------------------------------------------------------------------
    def _ssl_features(self, waveforms: Tensor, n_enc_frames: int) -> Tensor:
        """SSL features projected at the SSL frame rate, then upsampled to encoder frames."""
        feats = self.ssl(waveforms)  # (B, D, L_ssl)
        if self.ssl_proj is not None:  # a linear map commutes with repetition: project at 50 Hz
            feats = self.ssl_proj(feats.transpose(1, 2)).transpose(1, 2)  # (B, P, L_ssl)
        n_ssl = feats.shape[-1]
        frames = torch.arange(n_enc_frames, device=feats.device)
        if self.ssl_upsample == "repeat":  # pyannote: repeat_interleave(hop / stride), zero-pad
            index = torch.div(frames * self.config.stride, self.ssl.hop_length, rounding_mode="floor")
            valid = index < n_ssl
            out = feats.index_select(-1, index.clamp(max=n_ssl - 1))
            return out * valid.to(out.dtype)
        # encoder frame i is centred on sample i*stride + kernel/2: take the SSL frame whose hop
        # interval contains that sample (the last SSL frame is repeated at the end)
        centres = frames * self.config.stride + self.config.kernel_size // 2
        index = torch.div(centres, self.ssl.hop_length, rounding_mode="floor").clamp(max=n_ssl - 1)
        return feats.index_select(-1, index)

    def forward(self, waveforms: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T) -> sources (B, K, T) (same T), activations (B, K, F), F = self.num_frames(T)."""
        masked, activations = self.analyse(waveforms)
        b, k = masked.shape[:2]
        sources = self.decode(masked.reshape(b * k, *masked.shape[2:]), waveforms.shape[-1]).reshape(b, k, -1)
        return sources, activations

    def analyse(self, waveforms: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T) -> masked encoder frames (B, K, n_filters, L) and activations (B, K, F): everything
        but the decoder, so that inference can decode only the sources it uses (`decode`)."""
        if waveforms.dim() == 3 and waveforms.shape[1] == 1:
            waveforms = waveforms[:, 0]
        if waveforms.dim() != 2:
            raise ValueError(f"expected waveforms (B, T), got shape {tuple(waveforms.shape)}")
        padded = self._padded_length(waveforms.shape[1])
        x = nn.functional.pad(waveforms, (0, padded - waveforms.shape[1])).unsqueeze(1)
        tf = self.encoder(x)  # (B, N, L)
        if self.config.encoder_activation == "relu":
            tf = torch.relu(tf)
        masker_in = tf
        if self.ssl is not None:
            ssl = self._ssl_features(waveforms, tf.shape[-1])
            masker_in = tf + ssl if self.ssl_combine == "add" else torch.cat([tf, ssl], dim=1)
        masks = self.masker(masker_in)  # (B, K, N, L)
        masked = masks * tf.unsqueeze(1)
        return masked, self.diarization(masked)

    def decode(self, masked: Tensor, num_samples: int) -> Tensor:
        """Masked encoder frames (M, n_filters, L) -> waveforms (M, num_samples).

        Without autograd, the transposed convolution is computed as one matrix product and an
        overlap-add of kernel/stride shifted blocks (the same sums; ~5x faster on a CPU, where
        ConvTranspose1d with one output channel is slow). Training keeps the module (the memory
        factors of core.memory were measured on it)."""
        k, s = self.config.kernel_size, self.config.stride
        if torch.is_grad_enabled() or k % s:
            return self.decoder(masked)[:, 0, :num_samples]
        m, _, length = masked.shape
        r = k // s
        blocks = torch.matmul(masked.transpose(1, 2), self.decoder.weight[:, 0, :]).reshape(m, length, r, s)
        out = masked.new_zeros(m, length + r - 1, s)
        for j in range(r):
            out[:, j:j + length] += blocks[:, :, j]
        return out.reshape(m, -1)[:, :num_samples]

    # -- training helpers ------------------------------------------------------------------
    def set_trainable(self, update: str = "all") -> int:
        """Freeze all but the parts named by `update` (UPDATE_PARTS); returns the trainable count."""
        if update not in UPDATE_PARTS:
            raise ValueError(f"update must be one of {UPDATE_PARTS}, got {update!r}")
        last = len(getattr(self.masker, "blocks", ())) - 1
        for name, p in self.named_parameters():
            if update == "all":
                learn = True
            elif name.startswith("diarization."):
                learn = True
            elif update == "late" and name.startswith("masker."):
                inner = name[len("masker."):]
                learn = (inner.startswith(f"blocks.{last}.") if inner.startswith("blocks.")
                         else not inner.startswith(("input_norm.", "bottleneck.")))
            else:
                learn = False
            p.requires_grad_(learn and not (self.ssl is not None and name.startswith("ssl.") and update != "all"))
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def parameter_groups(self, lr: float, ssl_lr: float) -> list[dict]:
        """Adam parameter groups: the SSL network gets ssl_lr (paper 1e-5), everything else lr
        (paper 3e-4), including the SSL layer weights. Frozen parameters are left out."""
        ssl_ids = set()
        ssl_params = []
        if self.ssl is not None:
            for p in self.ssl.model.parameters():
                ssl_ids.add(id(p))
                if p.requires_grad:
                    ssl_params.append(p)
        main = [p for p in self.parameters() if id(p) not in ssl_ids and p.requires_grad]
        groups = [{"params": main, "lr": lr, "name": "main"}]
        if ssl_params:
            groups.append({"params": ssl_params, "lr": ssl_lr, "name": "ssl"})
        return groups

    def layer_weights(self) -> np.ndarray | None:
        """Softmax SSL layer weights (for plots), None if the model has no SSL front end."""
        return None if self.ssl is None else self.ssl.layer_weights()

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write config.json + model.safetensors into folder `path` (atomically: both files are
        written to a temporary folder next to it, then moved into place)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {}
        seen: dict[tuple, str] = {}
        for name, tensor in self.state_dict().items():
            t = tensor.detach().cpu().contiguous()
            key = (t.data_ptr(), t.numel(), t.dtype)
            if t.numel() and key in seen:  # safetensors refuses shared storage
                t = t.clone()
            seen[key] = name
            state[name] = t
        config = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **self.config.to_dict()}
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2), encoding="utf-8")
            path.mkdir(parents=True, exist_ok=True)
            # weights first, config last: a folder with a config always has matching weights
            publish(tmp / WEIGHTS_NAME, path / WEIGHTS_NAME)
            publish(tmp / CONFIG_NAME, path / CONFIG_NAME)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def load_folder(path: Path) -> ToTaToNet:
    """A ToTaToNet from a model folder (config.json + model.safetensors), in train mode; one-line ModelError
    for anything wrong with the folder. `core.models.load_model` is what callers use: it resolves names."""
    try:
        config = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path / CONFIG_NAME} is not a valid model config: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path / CONFIG_NAME} is not a valid model config: expected a JSON object")
    fmt = config.get("format")
    if fmt is not None and fmt != FORMAT_NAME:
        raise ModelError(f"{path / CONFIG_NAME} has format {fmt!r}, expected {FORMAT_NAME!r}")
    version = config.get("version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelError(f"{path} was saved by a newer PixIT Workbench (format version {version!r})")
    try:
        model = ToTaToNet(ToTaToNetConfig.from_dict(config))
    except ModelError as e:
        raise ModelError(f"{path / CONFIG_NAME}: {e}") from None
    except Exception as e:  # wrong types in the config and the like
        raise ModelError(f"{path / CONFIG_NAME} is not a valid model config: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from None
    state = read_safetensors(path / WEIGHTS_NAME)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        missing = set(model.state_dict()) - set(state)
        unexpected = set(state) - set(model.state_dict())
        detail = f"{len(missing)} missing, {len(unexpected)} unexpected tensors" if (missing or unexpected) else "tensor shapes differ"
        raise ModelError(f"{path / WEIGHTS_NAME} does not match {CONFIG_NAME} ({detail})") from None
    return model
