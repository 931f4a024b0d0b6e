"""Self-supervised speech features (WavLM, HuBERT, wav2vec2, w2v-BERT 2.0) for ToTaToNet.

`SSLFrontEnd(config)` wraps a transformers speech model and returns features at its own frame
rate (50 Hz, 320 samples per frame at 16 kHz): (B, T) -> (B, D, L_ssl).

Config dict keys (all optional except name_or_path):
- name_or_path: a local folder, or a Hugging Face Hub id `org/name[@revision]` loaded by transformers'
  own `from_pretrained` (cache, HF_HUB_OFFLINE and HF_TOKEN as huggingface_hub has them; gated,
  unknown and unreachable repos give core.hub's one-line errors). "allow_download": False keeps a hub
  id to the local cache. A saved ToTaToNet never needs either: it rebuilds the SSL network from its
  stored config.
- layers: "weighted" (softmax-weighted sum of ALL L+1 hidden states, SUPERB style; the weights are
  an nn.Parameter, see `layer_weights()`) or "last" (last_hidden_state).
- frozen: no gradients into the SSL network (it then also stays in eval mode).
- layerdrop (default 0.0), spec_augment (default False): written into the transformers config, so
  fine-tuning does not silently drop layers or mask features (the HF defaults are 0.1 / True).
- normalize: "auto" (default), True or False. Zero-mean unit-variance per utterance, the way the
  model was pre-trained: "auto" reads `do_normalize` of the model's feature extractor config, or
  when there is none, assumes normalisation for models with layer-normalised conv features
  (feat_extract_norm == "layer": WavLM-Large, wav2vec2-large-lv60, HuBERT-Large).
The first build resolves these and adds "hf_config" (the full transformers config dict) and, for
w2v-BERT, "feature_extractor"; `config_dict()` returns the resolved dict. A front end built from a
resolved dict calls `AutoModel.from_config` (random weights, no files needed): ToTaToNet then
loads the SSL weights from its own model.safetensors.

Hidden states are captured with forward hooks on the encoder layers, so a layer skipped by
layerdrop contributes a copy of its input (the count stays L+1), and the last state is the
model's final `last_hidden_state` (after the final LayerNorm of stable-layer-norm models).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from core.errors import ModelError, PixitError

__all__ = ["SSLFrontEnd", "DEFAULT_SSL_CONFIG"]

DEFAULT_SSL_CONFIG = {
    "name_or_path": None,
    "layers": "weighted",
    "frozen": False,
    "layerdrop": 0.0,
    "spec_augment": False,
    "normalize": "auto",
    "allow_download": True,
}

_FBANK_MODELS = ("wav2vec2-bert",)  # models taking log-mel input_features instead of waveforms


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class SSLFrontEnd(nn.Module):
    """Frozen or fine-tuned SSL speech model -> (B, D, L_ssl) features (weighted or last layer)."""

    def __init__(self, config: dict):
        super().__init__()
        if not isinstance(config, dict) or not config.get("name_or_path") and "hf_config" not in config:
            raise ModelError("ssl config needs 'name_or_path' (a local folder with the SSL model weights)")
        cfg = {**DEFAULT_SSL_CONFIG, **copy.deepcopy(config)}
        if cfg["layers"] not in ("weighted", "last"):
            raise ModelError(f"ssl layers must be 'weighted' or 'last', got {cfg['layers']!r}")
        # the w2v-BERT / wav2vec2 adapter changes the output rate and width: never used here
        overrides = {"layerdrop": float(cfg["layerdrop"]), "apply_spec_augment": bool(cfg["spec_augment"]),
                     "add_adapter": False}

        from transformers import AutoModel

        if cfg.get("hf_config"):
            hf_config = self._config_from_dict(cfg["hf_config"], overrides)
            if getattr(hf_config, "pixit_pruning", None):
                from core.pruning import build_pruned_model  # a structured-pruned front end

                self.model = build_pruned_model(hf_config)
            else:
                self.model = AutoModel.from_config(hf_config)
        else:
            self.model = self._from_pretrained(cfg, overrides)
        self.model.float()
        hf = self.model.config
        for key, value in overrides.items():  # read at run time by the HF model
            if hasattr(hf, key):
                setattr(hf, key, value)
        self.model_type = hf.model_type
        self.uses_fbank = self.model_type in _FBANK_MODELS
        if not self.uses_fbank and not hasattr(hf, "conv_stride"):
            raise ModelError(f"unsupported SSL model type {self.model_type!r}: expected a speech model "
                             "(WavLM, HuBERT, wav2vec2, w2v-BERT 2.0)")
        if self.uses_fbank:
            self._feature_extractor = self._make_feature_extractor(cfg)
            cfg["normalize"] = False  # the fbank extractor normalises per mel bin itself
        elif cfg["normalize"] == "auto":
            cfg["normalize"] = self._auto_normalize(cfg, hf)
        cfg["normalize"] = bool(cfg["normalize"])
        cfg["hf_config"] = hf.to_dict()
        self.cfg = cfg

        self.hidden_size = int(hf.hidden_size)
        self.num_layers = int(hf.num_hidden_layers)
        if self.uses_fbank:
            self.hop_length = 160 * int(getattr(self._feature_extractor, "stride", 2))
            self.receptive_field = 400 + (int(getattr(self._feature_extractor, "stride", 2)) - 1) * 160
        else:
            strides, kernels = list(hf.conv_stride), list(hf.conv_kernel)
            self.hop_length = int(np.prod(strides))
            rf, jump = 1, 1
            for k, s in zip(kernels, strides):
                rf += (k - 1) * jump
                jump *= s
            self.receptive_field = rf
        self.weights = nn.Parameter(torch.zeros(self.num_layers + 1)) if cfg["layers"] == "weighted" else None
        self.set_frozen(bool(cfg["frozen"]))
        self._layers = self._encoder_layers()

    # -- construction helpers --------------------------------------------------------------
    @staticmethod
    def _config_from_dict(d: dict, overrides: dict):
        from transformers import AutoConfig

        d = {k: v for k, v in d.items() if k not in ("transformers_version",)}
        model_type = d.pop("model_type", None)
        if not model_type:
            raise ModelError("stored SSL config has no model_type")
        try:
            config = AutoConfig.for_model(model_type, **d)
        except Exception as e:
            raise ModelError(f"stored SSL config cannot be rebuilt ({model_type}): {_one_line(e)}") from None
        for key, value in overrides.items():
            if hasattr(config, key):
                setattr(config, key, value)
        return config

    @staticmethod
    def _pretrained_source(cfg: dict) -> tuple[str, dict] | None:
        """(folder or repo id, keyword arguments of from_pretrained) for a local folder or a hub id."""
        from core.hub import parse_hub_id

        name = str(cfg["name_or_path"])
        path = Path(name).expanduser()
        if path.is_dir():
            return str(path), {"local_files_only": True}
        hub_id = parse_hub_id(name)
        if hub_id is not None and not path.exists():
            return hub_id[0], {"revision": hub_id[1], "local_files_only": not cfg.get("allow_download", True)}
        return None

    @classmethod
    def _from_pretrained(cls, cfg: dict, overrides: dict):
        from transformers import AutoConfig, AutoModel

        from core.hub import translated_errors

        name = str(cfg["name_or_path"])
        path = Path(name).expanduser()
        if path.is_dir():
            from core.pruning import is_pruned_folder, load_pruned

            if is_pruned_folder(path):
                return load_pruned(path, **overrides)
        source = cls._pretrained_source(cfg)
        if source is None:
            raise ModelError(f"SSL model {name} not found: pass a local folder or a Hugging Face Hub id org/name[@revision]")
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            with translated_errors(source[0], source[1].get("revision")):
                config = AutoConfig.from_pretrained(source[0], **source[1])
                for key, value in overrides.items():
                    if hasattr(config, key):
                        setattr(config, key, value)
                return AutoModel.from_pretrained(source[0], config=config, dtype=torch.float32, **source[1])
        except PixitError:
            raise
        except Exception as e:
            where = "from its local folder" if path.is_dir() else "from the Hugging Face Hub"
            raise ModelError(f"SSL model {name} could not be loaded {where} ({_one_line(e)[:160]})") from None
        finally:
            if bars:
                hf_logging.enable_progress_bar()

    def _make_feature_extractor(self, cfg: dict):
        from transformers import SeamlessM4TFeatureExtractor

        try:
            if cfg.get("feature_extractor"):
                d = {k: v for k, v in cfg["feature_extractor"].items() if k != "feature_extractor_type"}
                fe = SeamlessM4TFeatureExtractor(**d)
            elif cfg.get("name_or_path") and (source := self._pretrained_source(cfg)) is not None:
                try:
                    fe = SeamlessM4TFeatureExtractor.from_pretrained(source[0], **source[1])
                except Exception:  # no preprocessor_config.json: the extractor's defaults
                    fe = SeamlessM4TFeatureExtractor()
            else:
                fe = SeamlessM4TFeatureExtractor()
        except Exception as e:
            raise ModelError(f"w2v-BERT feature extractor cannot be built: {_one_line(e)}") from None
        cfg["feature_extractor"] = json_safe(fe.to_dict())
        return fe

    @classmethod
    def _auto_normalize(cls, cfg: dict, hf) -> bool:
        source = cls._pretrained_source(cfg) if cfg.get("name_or_path") else None
        if source is not None:
            try:
                from transformers import AutoFeatureExtractor

                fe = AutoFeatureExtractor.from_pretrained(source[0], **source[1])
                if hasattr(fe, "do_normalize"):
                    return bool(fe.do_normalize)
            except Exception:  # no preprocessor_config.json: decide from the architecture
                pass
        return getattr(hf, "feat_extract_norm", "group") == "layer"

    def _encoder_layers(self) -> nn.ModuleList:
        layers = getattr(getattr(self.model, "encoder", None), "layers", None)
        if not isinstance(layers, nn.ModuleList) or len(layers) != self.num_layers:
            raise ModelError(f"unsupported SSL model type {self.model_type!r}: no encoder.layers")
        return layers

    # -- public API ------------------------------------------------------------------------
    def config_dict(self) -> dict:
        """The resolved config (with the transformers config) to store in a saved model."""
        return copy.deepcopy(self.cfg)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze (no grads, eval mode) or unfreeze the SSL network; layer weights stay trainable."""
        self.frozen = frozen
        self.cfg["frozen"] = frozen
        for p in self.model.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            self.model.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "frozen", False):
            self.model.eval()
        return self

    def layer_weights(self) -> np.ndarray:
        """Softmax layer weights over the L+1 hidden states (one-hot on the last for layers='last')."""
        if self.weights is None:
            w = np.zeros(self.num_layers + 1, dtype=np.float32)
            w[-1] = 1.0
            return w
        return torch.softmax(self.weights.detach().float(), 0).cpu().numpy()

    def _model_inputs(self, waveforms: Tensor) -> dict:
        if self.uses_fbank:
            audio = [w.detach().cpu().float().numpy() for w in waveforms]
            out = self._feature_extractor(audio, sampling_rate=16000, return_tensors="pt",
                                          return_attention_mask=False, padding=False)
            return {"input_features": out["input_features"].to(waveforms.device, torch.float32)}
        if self.cfg["normalize"]:
            mean = waveforms.mean(dim=-1, keepdim=True)
            var = waveforms.var(dim=-1, keepdim=True, unbiased=False)
            waveforms = (waveforms - mean) / torch.sqrt(var + 1e-7)
        return {"input_values": waveforms}

    def forward(self, waveforms: Tensor) -> Tensor:
        """(B, T) 16 kHz -> (B, D, L_ssl) features at the SSL frame rate."""
        if waveforms.shape[-1] < self.receptive_field:
            waveforms = nn.functional.pad(waveforms, (0, self.receptive_field - waveforms.shape[-1]))
        inputs = self._model_inputs(waveforms.float())
        if self.weights is None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
                out = self.model(**inputs).last_hidden_state
            return out.transpose(1, 2)

        captured: dict[int, Tensor] = {}
        first_input: list[Tensor] = []

        def pre_hook(module, args, kwargs):
            if not first_input:
                first_input.append(args[0] if args else kwargs["hidden_states"])

        def make_hook(i):
            def hook(module, args, output):
                captured[i] = output[0] if isinstance(output, (tuple, list)) else output
            return hook

        handles = [layer.register_forward_pre_hook(pre_hook, with_kwargs=True) for layer in self._layers]
        handles += [layer.register_forward_hook(make_hook(i)) for i, layer in enumerate(self._layers)]
        try:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
                last = self.model(**inputs).last_hidden_state
        finally:
            for h in handles:
                h.remove()
        states = [first_input[0]]
        for i in range(self.num_layers - 1):  # a layer skipped by layerdrop passes its input on
            states.append(captured.get(i, states[-1]))
        states.append(last)
        stacked = torch.stack(states, dim=0)  # (L+1, B, L_ssl, D)
        w = torch.softmax(self.weights, dim=0).to(stacked.dtype)
        feats = (w[:, None, None, None] * stacked).sum(0)
        return feats.transpose(1, 2)


def json_safe(obj):
    """Convert numpy values in a feature-extractor dict to plain JSON types."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
