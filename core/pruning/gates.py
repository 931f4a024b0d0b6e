"""Hard-concrete gates (Louizos et al., L0 regularisation) on the prunable units of a
transformers SSL model, attached with hooks and weight parametrizations -- no transformers code
is copied or replaced, and `detach()` restores the original model exactly.

Where the masks act (training: one sample per forward of the model; eval: deterministic):
- conv channels of feature-encoder layer i: forward hook multiplying the conv layer's output
  (after conv -> norm -> GELU) by the channel mask;
- attention heads of layer l: parametrization of `attention.out_proj.weight` scaling the input
  columns of head h by z_h. That is exactly "mask the per-head attention output before out_proj",
  and it also works for WavLM, whose attention calls F.multi_head_attention_forward with the raw
  weight tensors (its relative position bias and GRU gating stay per original head);
- FFN units of layer l: parametrization of `feed_forward.output_dense.weight` scaling column j
  by z_j (= masking the intermediate activation, dropout commutes with the scaling);
- optional whole-layer gates ("attlayer", "ffnlayer"): forward hooks scaling the attention /
  feed-forward block output.

Eval mask (DiariZen / DPHuBERT convention): keep the round(E[L0]) units with the largest
sigmoid(0.8 * log_alpha / beta); kept units keep that soft value, which `shrink` folds into the
next layer's weights.
"""

from __future__ import annotations

import math
import weakref
from typing import Iterable

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from core.errors import ModelError
from core.pruning.arch import Arch, Counts, model_family

DEFAULT_UNITS = ("conv", "head", "ffn")
ALL_UNITS = ("conv", "head", "ffn", "attlayer", "ffnlayer")


class HardConcrete(nn.Module):
    """n hard-concrete gates z in [0, 1]: log_alpha per unit, temperature beta, stretch (l, r).

    `sample()` draws z with the reparametrisation trick, `eval_mask()` is deterministic,
    `prob_nonzero()` = P(z > 0) per unit (its sum is the expected L0 norm)."""

    def __init__(self, n: int, init_drop: float = 0.5, init_std: float = 0.01, beta: float = 2 / 3,
                 l: float = -0.1, r: float = 1.1, eps: float = 1e-6):
        super().__init__()
        self.n = int(n)
        self.beta, self.l, self.r, self.eps = float(beta), float(l), float(r), float(eps)
        mean = math.log(1 - init_drop) - math.log(init_drop)
        self.log_alpha = nn.Parameter(torch.randn(self.n) * init_std + mean)

    def prob_nonzero(self) -> Tensor:
        return torch.sigmoid(self.log_alpha - self.beta * math.log(-self.l / self.r))

    def l0_norm(self) -> Tensor:
        return self.prob_nonzero().sum()

    def sample(self) -> Tensor:
        u = torch.rand(self.n, device=self.log_alpha.device).clamp(self.eps, 1 - self.eps)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / self.beta)
        return (s * (self.r - self.l) + self.l).clamp(0.0, 1.0)

    @torch.no_grad()
    def eval_mask(self) -> Tensor:
        num_zeros = round(self.n - float(self.l0_norm()))
        soft = torch.sigmoid(self.log_alpha / self.beta * 0.8)
        if num_zeros > 0:
            soft[torch.topk(soft, k=num_zeros, largest=False).indices] = 0.0
        return soft

    def forward(self) -> Tensor:
        return self.sample() if self.training else self.eval_mask()

    def extra_repr(self) -> str:
        return f"n={self.n}"


class _ColumnScale(nn.Module):
    """Parametrization W -> W * mask (per input column, mask repeated `repeat` times)."""

    def __init__(self, owner: "PruningGates", key: str, repeat: int = 1):
        super().__init__()
        self._owner = weakref.ref(owner)  # not a submodule: the gates are not part of the model
        self.key = key
        self.repeat = repeat

    def forward(self, weight: Tensor) -> Tensor:
        owner = self._owner()
        if owner is None or not owner.attached:
            return weight
        mask = owner.mask(self.key)
        if self.repeat > 1:
            mask = mask.repeat_interleave(self.repeat)
        return weight * mask.to(weight.dtype)[None, :]


class PruningGates(nn.Module):
    """The gates of one SSL model. Keys: "conv_i", "head_l", "ffn_l", "attlayer_l", "ffnlayer_l".

    The model is referenced, not owned (its state_dict stays unchanged apart from the
    parametrized weights while attached). Masks are drawn once per forward of the model: a
    forward pre-hook on the model samples them (training) or computes the eval masks."""

    def __init__(self, model: nn.Module, units: Iterable[str] = DEFAULT_UNITS,
                 init_drop: float = 0.5, init_drop_conv: float = 0.01):
        super().__init__()
        units = tuple(units)
        bad = [u for u in units if u not in ALL_UNITS]
        if bad:
            raise ModelError(f"unknown pruning units {bad}; choose from {', '.join(ALL_UNITS)}")
        self.family = model_family(model)
        if isinstance(getattr(model.config, "pixit_pruning", None), dict):
            raise ModelError("this SSL model is already pruned; prune the unpruned (fine-tuned) model instead")
        self.arch = Arch.from_model(model)
        self.units = units
        self._model = [model]  # plain list: keeps the model out of self.modules()
        self.gates = nn.ModuleDict()
        a = self.arch
        if "conv" in units:
            for i, ok in enumerate(a.prunable_conv):
                if ok:
                    self.gates[f"conv_{i}"] = HardConcrete(a.conv_dim[i], init_drop=init_drop_conv)
        for l in range(a.num_layers):
            if "head" in units:
                self.gates[f"head_{l}"] = HardConcrete(a.num_heads, init_drop=init_drop)
            if "ffn" in units:
                self.gates[f"ffn_{l}"] = HardConcrete(a.intermediate, init_drop=init_drop)
            if "attlayer" in units:
                self.gates[f"attlayer_{l}"] = HardConcrete(1, init_drop=init_drop_conv)
            if "ffnlayer" in units:
                self.gates[f"ffnlayer_{l}"] = HardConcrete(1, init_drop=init_drop_conv)
        self._masks: dict[str, Tensor] = {}
        self._handles: list = []
        self._parametrized: list[nn.Module] = []
        self.attached = False

    @property
    def model(self) -> nn.Module:
        return self._model[0]

    # -- masks ----------------------------------------------------------------------------------
    def refresh(self, training: bool | None = None) -> None:
        """Draw (training) or compute (eval) all masks; called before every model forward."""
        training = self.model.training if training is None else training
        for gate in self.gates.values():
            gate.train(training)
        self._masks = {k: g() for k, g in self.gates.items()}

    def mask(self, key: str) -> Tensor:
        if key not in self._masks:
            self.refresh()
        return self._masks[key]

    def eval_masks(self) -> dict[str, Tensor]:
        """The deterministic masks (what `shrink` keeps), detached."""
        return {k: g.eval_mask() for k, g in self.gates.items()}

    # -- attach / detach ---------------------------------------------------------------------------
    def attach(self) -> "PruningGates":
        if self.attached:
            return self
        model = self.model
        self._handles.append(model.register_forward_pre_hook(lambda mod, args: self.refresh(mod.training)))
        for key in self.gates:
            kind, idx = key.split("_")
            idx = int(idx)
            if kind == "conv":
                self._handles.append(model.feature_extractor.conv_layers[idx].register_forward_hook(self._channel_hook(key)))
            elif kind == "head":
                out_proj = model.encoder.layers[idx].attention.out_proj
                parametrize.register_parametrization(out_proj, "weight", _ColumnScale(self, key, self.arch.head_dim))
                self._parametrized.append(out_proj)
            elif kind == "ffn":
                dense = model.encoder.layers[idx].feed_forward.output_dense
                parametrize.register_parametrization(dense, "weight", _ColumnScale(self, key))
                self._parametrized.append(dense)
            elif kind == "attlayer":
                self._handles.append(model.encoder.layers[idx].attention.register_forward_hook(self._block_hook(key)))
            elif kind == "ffnlayer":
                self._handles.append(model.encoder.layers[idx].feed_forward.register_forward_hook(self._block_hook(key)))
        self.attached = True
        return self

    def detach(self) -> None:
        """Remove every hook and parametrization: the model is exactly the original again."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for module in self._parametrized:
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
        self._parametrized.clear()
        self._masks = {}
        self.attached = False

    def _channel_hook(self, key: str):
        def hook(module, args, output):
            return output * self.mask(key).to(output.dtype)[None, :, None]
        return hook

    def _block_hook(self, key: str):
        def hook(module, args, output):
            z = self.mask(key).to(output[0].dtype if isinstance(output, tuple) else output.dtype)[0]
            if isinstance(output, tuple):
                return (output[0] * z, *output[1:])
            return output * z
        return hook

    # -- sizes ------------------------------------------------------------------------------------------
    def _counts(self, per_unit) -> Counts:
        """Counts from per-gate kept probabilities (expected) or 0/1 indicators (hard)."""
        a = self.arch
        conv = []
        for i, ch in enumerate(a.conv_dim):
            key = f"conv_{i}"
            conv.append(per_unit[key].sum() if key in per_unit else ch)
        heads, ffn, att_any = [], [], []
        for l in range(a.num_layers):
            ph = per_unit.get(f"head_{l}")
            pa = per_unit[f"attlayer_{l}"][0] if f"attlayer_{l}" in per_unit else 1.0
            pf = per_unit[f"ffnlayer_{l}"][0] if f"ffnlayer_{l}" in per_unit else 1.0
            h = ph.sum() if ph is not None else a.num_heads
            anyh = (1 - torch.prod(1 - ph)) if ph is not None else 1.0
            heads.append(h * pa)
            att_any.append(anyh * pa)
            pm = per_unit.get(f"ffn_{l}")
            ffn.append((pm.sum() if pm is not None else a.intermediate) * pf)
        return Counts(conv=conv, heads=heads, ffn=ffn, att_any=att_any)

    def expected_counts(self) -> Counts:
        """Differentiable expected kept units (P(z > 0) summed; gates are independent)."""
        return self._counts({k: g.prob_nonzero() for k, g in self.gates.items()})

    def hard_counts(self) -> Counts:
        """Units kept by the eval masks, i.e. by `shrink` (ints)."""
        ind = {k: (m > 0).float() for k, m in self.eval_masks().items()}
        c = self._counts(ind)
        to_int = lambda v: int(round(float(v)))
        return Counts(conv=[to_int(v) for v in c.conv], heads=[to_int(v) for v in c.heads],
                      ffn=[to_int(v) for v in c.ffn], att_any=[to_int(v) for v in c.att_any])

    def expected_size(self, target: str = "params", seconds: float = 5.0) -> Tensor:
        return self.arch.size(self.expected_counts(), target, seconds)

    def expected_sparsity(self, target: str = "params", seconds: float = 5.0) -> Tensor:
        """1 - E[size] / size of the unpruned model (differentiable w.r.t. log_alpha)."""
        return 1 - self.expected_size(target, seconds) / self.arch.full_size(target, seconds)

    def hard_size(self, target: str = "params", seconds: float = 5.0) -> float:
        return float(self.arch.size(self.hard_counts(), target, seconds))

    def hard_sparsity(self, target: str = "params", seconds: float = 5.0) -> float:
        return 1 - self.hard_size(target, seconds) / self.arch.full_size(target, seconds)

    def log_alpha_parameters(self) -> list[nn.Parameter]:
        return [g.log_alpha for g in self.gates.values()]


def attach_gates(model: nn.Module, units: Iterable[str] = DEFAULT_UNITS, init_drop: float = 0.5,
                 init_drop_conv: float = 0.01) -> PruningGates:
    """Put hard-concrete gates on `model` (a transformers WavLMModel / HubertModel /
    Wav2Vec2Model) and return them; `gates.detach()` removes them again."""
    return PruningGates(model, units, init_drop=init_drop, init_drop_conv=init_drop_conv).attach()
