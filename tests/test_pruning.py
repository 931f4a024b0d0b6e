"""Structured pruning of the SSL front end: hard-concrete gates, expected sizes, the Lagrangian,
physical shrinking (exact equivalence with the gated model), saving/reloading without gate code,
and the `pixit prune` command. Tiny random transformers models (no downloads)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import Cancelled, ModelError
from core.pipeline import PipelineParams
from core.pruning import (
    HardConcrete,
    PruningGates,
    attach_gates,
    build_pruned_model,
    counts_of,
    is_pruned_folder,
    load_pruned,
    save_pruned,
    shrink,
)
from core.pruning.arch import Arch

torch.set_num_threads(1)  # 2 threads on shared, loaded cores are much slower here
warnings.filterwarnings("ignore", message="Initializing zero-element tensors")

ROOT = Path(__file__).resolve().parent.parent
# 320 samples per frame like the real models, so 1 s of audio = 50 frames
CONV = dict(conv_dim=(32, 24, 32), conv_kernel=(10, 8, 4), conv_stride=(5, 8, 8),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
TINY = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
            layerdrop=0.0, mask_time_prob=0.0)


def tiny_model(kind: str, seed: int = 0):
    import transformers as tr

    torch.manual_seed(seed)
    if kind == "wavlm":          # WavLM Base style: post-LN, group-norm conv, projection LayerNorm
        return tr.WavLMModel(tr.WavLMConfig(**TINY, **CONV, num_buckets=32, max_bucket_distance=64)).eval()
    if kind == "wavlm-large":    # WavLM Large style: stable layer norm, layer-norm conv features
        return tr.WavLMModel(tr.WavLMConfig(**TINY, **CONV, num_buckets=32, max_bucket_distance=64,
                                            do_stable_layer_norm=True, feat_extract_norm="layer")).eval()
    if kind == "hubert":         # no projection LayerNorm: the last conv layer is prunable too
        return tr.HubertModel(tr.HubertConfig(**TINY, **CONV, feat_proj_layer_norm=False)).eval()
    if kind == "wav2vec2":
        return tr.Wav2Vec2Model(tr.Wav2Vec2Config(**TINY, **CONV, conv_bias=True)).eval()
    raise ValueError(kind)


def randomise(gates: PruningGates, seed: int = 0) -> None:
    """A mixed gate state: some units dropped, soft values in (0, 1), one layer without heads,
    one FFN without units."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for gate in gates.gates.values():
            gate.log_alpha.copy_(torch.randn(gate.n, generator=gen) * 2.5 + 0.5)
        gates.gates["head_1"].log_alpha.fill_(-10.0)
        gates.gates["ffn_2"].log_alpha.fill_(-10.0)


def hidden_states(model, x):
    with torch.no_grad():
        return model(x, output_hidden_states=True).hidden_states


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


# -- gates ------------------------------------------------------------------------------------------
def test_hard_concrete_train_samples_and_deterministic_eval_mask():
    torch.manual_seed(0)
    gate = HardConcrete(200, init_drop=0.5)
    gate.train()
    a, b = gate(), gate()
    assert a.min() >= 0 and a.max() <= 1 and not torch.equal(a, b)
    assert (a == 0).any() and (a == 1).any()      # the stretch puts mass on exactly 0 and 1
    gate.eval()
    m1, m2 = gate(), gate()
    assert torch.equal(m1, m2)
    # keeps round(E[L0]) units
    assert int((m1 > 0).sum()) == round(float(gate.l0_norm().detach()))
    with torch.no_grad():
        gate.log_alpha.fill_(-8.0)
    assert int((gate() > 0).sum()) == 0
    with torch.no_grad():
        gate.log_alpha.fill_(8.0)
    assert int((gate() > 0).sum()) == 200 and torch.allclose(gate(), torch.ones(200), atol=1e-4)


def test_gates_detach_restores_the_original_model():
    model = tiny_model("wavlm")
    x = torch.randn(2, 8000)
    ref = model(x).last_hidden_state.detach()
    keys = set(model.state_dict())
    gates = attach_gates(model, units=("conv", "head", "ffn", "attlayer", "ffnlayer"))
    randomise(gates)
    assert not torch.allclose(model(x).last_hidden_state, ref, atol=1e-3)
    gates.detach()
    assert set(model.state_dict()) == keys
    assert torch.equal(model(x).last_hidden_state.detach(), ref)


def test_expected_size_is_monotonic_and_matches_hard_counts():
    model = tiny_model("wavlm")
    gates = attach_gates(model)
    arch = gates.arch
    with torch.no_grad():
        for g in gates.gates.values():
            g.log_alpha.fill_(12.0)
    full_p, full_m = arch.full_size("params"), arch.full_size("macs")
    assert full_p == numel(model)
    assert abs(float(gates.expected_size("params").detach()) - full_p) / full_p < 1e-4
    assert gates.hard_size("params") == full_p and gates.hard_size("macs") == full_m

    # closing any single gate lowers the expected size (params and MACs)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for g in gates.gates.values():
            g.log_alpha.copy_(torch.randn(g.n, generator=gen))
    for key in ("conv_0", "conv_1", "head_0", "ffn_2"):
        before_p = float(gates.expected_size("params").detach())
        before_m = float(gates.expected_size("macs").detach())
        with torch.no_grad():
            gates.gates[key].log_alpha[0] -= 3.0
        assert float(gates.expected_size("params").detach()) < before_p
        assert float(gates.expected_size("macs").detach()) < before_m

    # near-binary gates: expectation == hard count == parameters of the shrunk model
    with torch.no_grad():
        for g in gates.gates.values():
            g.log_alpha.copy_(torch.where(torch.rand(g.n, generator=gen) < 0.4, -15.0, 15.0))
    hard = gates.hard_size("params")
    assert abs(float(gates.expected_size("params").detach()) - hard) / hard < 1e-3
    assert abs(float(gates.expected_size("macs").detach()) - gates.hard_size("macs")) / gates.hard_size("macs") < 1e-3
    pruned = shrink(gates)
    assert numel(pruned) == hard < full_p
    assert float(arch.params(counts_of(pruned))) == hard
    assert 0 < gates.hard_sparsity("params") < 1

    # the expected sparsity is differentiable w.r.t. every log_alpha
    s = gates.expected_sparsity("macs")
    s.backward()
    assert all(g.log_alpha.grad is not None and g.log_alpha.grad.abs().sum() > 0 for g in gates.gates.values())


def test_macs_formula_matches_a_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    model = tiny_model("wavlm")    # transformers WavLM attention runs as counted (b)mm ops
    arch = Arch.from_model(model)
    x = torch.randn(1, 32000)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    measured = counter.get_total_flops() / 2
    predicted = arch.macs(arch.full_counts(), seconds=2.0) * 2.0
    assert abs(measured - predicted) / measured < 2e-3


def test_layer_norm_conv_encoders_get_no_conv_gates():
    gates = attach_gates(tiny_model("wavlm-large"))
    assert not any(k.startswith("conv") for k in gates.gates)
    gates = attach_gates(tiny_model("wavlm"))       # last conv feeds the projection LayerNorm
    assert sorted(k for k in gates.gates if k.startswith("conv")) == ["conv_0", "conv_1"]
    gates = attach_gates(tiny_model("hubert"))      # no projection LayerNorm
    assert sorted(k for k in gates.gates if k.startswith("conv")) == ["conv_0", "conv_1", "conv_2"]


# -- shrinking -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["wavlm", "wavlm-large", "hubert", "wav2vec2"])
def test_shrunk_model_equals_gated_model_in_eval(kind):
    model = tiny_model(kind)
    gates = attach_gates(model, units=("conv", "head", "ffn", "attlayer", "ffnlayer"))
    randomise(gates, seed=3)
    x = torch.randn(2, 12000)
    gated = hidden_states(model, x)
    pruned = shrink(gates)
    from core.pruning.gates import _ColumnScale

    assert not any(isinstance(m, (HardConcrete, PruningGates, _ColumnScale)) for m in pruned.modules())
    hooks = [h for m in pruned.modules() for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())]
    assert not [h for h in hooks if getattr(h, "__module__", "").startswith("core.pruning")]
    out = hidden_states(pruned, x)
    assert len(out) == len(gated) == TINY["num_hidden_layers"] + 1
    for a, b in zip(gated, out):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4)
    n = counts_of(pruned)
    assert n.heads[1] == 0 and n.ffn[2] == 0
    assert numel(pruned) == gates.hard_size("params") < numel(model)
    # the gated model itself is untouched by shrink(inplace=False)
    torch.testing.assert_close(hidden_states(model, x)[-1], gated[-1])


@pytest.mark.parametrize("kind,units", [("wavlm", ("conv", "ffn")), ("hubert", ("head",))])
def test_shrink_with_some_unit_kinds_only(kind, units):
    model = tiny_model(kind)
    gates = attach_gates(model, units=units)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for gate in gates.gates.values():
            gate.log_alpha.copy_(torch.randn(gate.n, generator=gen) * 2.5)
    x = torch.randn(1, 8000)
    gated = hidden_states(model, x)
    pruned = shrink(gates)
    for a, b in zip(gated, hidden_states(pruned, x)):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4)
    assert numel(pruned) == gates.hard_size("params") < numel(model)


def test_shrunk_folder_reloads_without_gate_code(tmp_path):
    model = tiny_model("wavlm")
    gates = attach_gates(model)
    randomise(gates, seed=5)
    x = torch.randn(1, 16000)
    gated = hidden_states(model, x)
    pruned = shrink(gates)
    folder = save_pruned(pruned, tmp_path / "ssl")
    assert is_pruned_folder(folder) and not is_pruned_folder(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "wavlm" and len(config["pixit_pruning"]["layers"]) == 3
    assert config["conv_dim"] == counts_of(pruned).conv

    loaded = load_pruned(folder)
    from core.pruning.gates import _ColumnScale

    assert numel(loaded) == numel(pruned) < numel(model)
    assert not any(isinstance(m, (HardConcrete, PruningGates, _ColumnScale)) for m in loaded.modules())
    assert not [h for m in loaded.modules() for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
                if getattr(h, "__module__", "").startswith("core.pruning")]
    for a, b in zip(gated, hidden_states(loaded, x)):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4)
    # the config dict alone rebuilds the shapes (how a saved ToTaToNet rebuilds its front end)
    rebuilt = build_pruned_model(config)
    rebuilt.load_state_dict(loaded.state_dict(), strict=True)
    with pytest.raises(ModelError):
        load_pruned(tmp_path)


def test_already_pruned_models_are_refused():
    model = tiny_model("hubert")
    gates = attach_gates(model)
    randomise(gates)
    with pytest.raises(ModelError, match="already pruned"):
        attach_gates(shrink(gates))


# -- distillation + Lagrangian ---------------------------------------------------------------------
def _audio(seconds=6.0, n=2):
    from core.pruning.distill import AudioChunks

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    waves = [(0.1 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
             for _ in range(n)]
    return AudioChunks.from_arrays(waves, chunk_seconds=1.0, seed=0)


def test_lagrangian_drives_expected_sparsity_to_the_target():
    from core.pruning.distill import PruneConfig, prune_ssl

    model = tiny_model("wavlm")
    before = numel(model)
    rows = []
    cfg = PruneConfig(target_sparsity=0.5, steps=200, warmup_steps=40, batch_size=1, chunk_seconds=1.0, reg_lr=0.05)
    result = prune_ssl(model, _audio(), cfg, progress=lambda f, m: rows.append((f, m)))
    s = np.array([r["expected_sparsity"] for r in result.history])
    assert s[0] < 0.2                                   # the gates start (almost) open
    assert s.max() > 0.45                               # pushed up to the target ...
    assert np.abs(s[-50:] - 0.5).mean() < 0.2           # ... and kept around it (Adam on lambda oscillates)
    lam1 = [r["lambda1"] for r in result.history]
    lam2 = [r["lambda2"] for r in result.history]
    assert min(lam1) < 0                                # ascent: lambda1 < 0 while s < t pushes s up
    assert lam2[-1] > 0 and all(b >= a for a, b in zip(lam2, lam2[1:]))  # (s - t)^2 >= 0: only grows
    assert 0.25 < result.params_sparsity < 0.8
    assert result.params_after == numel(result.model) < before
    assert rows and rows[-1][0] == 1.0 and all(0 <= f <= 1 for f, _ in rows)
    assert "pixit_pruning" in result.model.config.to_dict()


def test_prune_ssl_can_be_cancelled():
    from core.pruning.distill import PruneConfig, prune_ssl

    model = tiny_model("hubert")
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        prune_ssl(model, _audio(), PruneConfig(steps=50, batch_size=1, chunk_seconds=1.0), should_stop=stop)
    from core.pruning.gates import _ColumnScale

    assert not any(isinstance(m, _ColumnScale) for m in model.modules())  # gates removed


# -- command line ---------------------------------------------------------------------------------------
def _tiny_totatonet(ssl: dict | None):
    from core.models.totatonet import ToTaToNet, ToTaToNetConfig

    return ToTaToNet(ToTaToNetConfig(n_filters=16, kernel_size=16, stride=8, diar_hidden=8, diar_layers=1,
                                     masker_params=dict(bn_chan=16, hid_size=16, chunk_size=20, hop=10, n_repeats=1),
                                     ssl=ssl))


def test_cli_refuses_a_model_without_ssl_front_end(tmp_path, tiny_corpus):
    _tiny_totatonet(None).save(tmp_path / "plain")
    out = subprocess.run([sys.executable, "-m", "core.cli", "prune", "--model", str(tmp_path / "plain"),
                          "--train", str(tiny_corpus), "--out", str(tmp_path / "out")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no SSL front end" in lines[0], out.stderr


def test_prune_command_end_to_end(tmp_path, tiny_corpus):
    from core.commands.prune import prune_model

    ssl_dir = tmp_path / "wavlm"
    tiny_model("wavlm").save_pretrained(ssl_dir)
    net = _tiny_totatonet({"name_or_path": str(ssl_dir), "layers": "weighted"})
    net.save(tmp_path / "model")
    PipelineParams(threshold=0.3).save(tmp_path / "model" / "params.json")
    before = numel(net.ssl.model)
    messages = []
    res = prune_model(tmp_path / "model", tiny_corpus, tmp_path / "pruned", sparsity=0.5, steps=30,
                      warmup_steps=10, batch_size=2, chunk_duration=1.0, reg_lr=0.1, device="cpu",
                      progress=lambda f, m: messages.append(m))
    assert messages and "pruned" in messages[-1]
    ssl = load_pruned(res["ssl_dir"])
    assert numel(ssl) < before
    summary = json.loads((tmp_path / "pruned" / "pruning.json").read_text())
    assert summary["params"] == numel(ssl) and summary["original_params"] == before
    assert (tmp_path / "pruned" / "history.csv").read_text().count("\n") == 31
    saved = json.loads((res["model_dir"] / "config.json").read_text())
    assert "pixit_pruning" in saved["ssl"]["hf_config"]
    # the pipeline parameters tuned for the model stay with the pruned one
    assert PipelineParams.load(res["model_dir"] / "params.json").threshold == 0.3
    from core.models import load_model

    reloaded = load_model(res["model_dir"])
    assert numel(reloaded.ssl.model) == numel(ssl)
    x = torch.randn(1, 16000)
    with torch.no_grad():
        sources, activations = reloaded(x)
    assert sources.shape[-1] == 16000 and torch.isfinite(activations).all()
