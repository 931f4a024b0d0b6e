"""pyannote ToTaToNet checkpoint import: a checkpoint with the reference parameter names and shapes
(pyannote.audio 4.0.7 ToTaToNet + asteroid 0.7.0 DPRNN, see core/models/pyannote_compat.py),
saved the way Lightning saves it, converts strictly, and the converted model reproduces an
independent re-implementation of the reference forward pass."""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
import types

import pytest
import torch
import torch.nn.functional as F

from core.errors import ModelError
from core.models.pyannote_compat import convert_checkpoint, map_name

torch.set_num_threads(2)

HP = {
    "encoder_decoder": {"fb_name": "free", "kernel_size": 32, "n_filters": 16, "stride": 16},
    "dprnn": {"n_repeats": 2, "bn_chan": 12, "hid_size": 8, "chunk_size": 20, "norm_type": "gLN", "mask_act": "relu", "rnn_type": "LSTM"},
    "linear": {"hidden_size": 64, "num_layers": 2},
    "diar": {"frames_per_second": 125},
    "wavlm_frozen": False,
    "sample_rate": 16000,
    "num_channels": 1,
}
N_SRC = 3


def reference_state_dict(in_chan: int, seed: int = 0) -> dict:
    """Random tensors under pyannote's names, with the reference shapes."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: 0.3 * torch.randn(*shape, generator=g)  # noqa: E731
    n, k = HP["encoder_decoder"]["n_filters"], HP["encoder_decoder"]["kernel_size"]
    bn, hid = HP["dprnn"]["bn_chan"], HP["dprnn"]["hid_size"]
    sd = {"encoder.filterbank._filters": r(n, 1, k), "decoder.filterbank._filters": r(n, 1, k),
          "masker.bottleneck.0.gamma": 1 + r(in_chan), "masker.bottleneck.0.beta": r(in_chan),
          "masker.bottleneck.1.weight": r(bn, in_chan, 1), "masker.bottleneck.1.bias": r(bn)}
    for i in range(HP["dprnn"]["n_repeats"]):
        for path in ("intra", "inter"):
            for suffix in ("", "_reverse"):
                sd[f"masker.net.{i}.{path}_RNN.rnn.weight_ih_l0{suffix}"] = r(4 * hid, bn)
                sd[f"masker.net.{i}.{path}_RNN.rnn.weight_hh_l0{suffix}"] = r(4 * hid, hid)
                sd[f"masker.net.{i}.{path}_RNN.rnn.bias_ih_l0{suffix}"] = r(4 * hid)
                sd[f"masker.net.{i}.{path}_RNN.rnn.bias_hh_l0{suffix}"] = r(4 * hid)
            sd[f"masker.net.{i}.{path}_linear.weight"] = r(bn, 2 * hid)
            sd[f"masker.net.{i}.{path}_linear.bias"] = r(bn)
            sd[f"masker.net.{i}.{path}_norm.gamma"] = 1 + r(bn)
            sd[f"masker.net.{i}.{path}_norm.beta"] = r(bn)
    sd.update({"masker.first_out.0.weight": torch.tensor([0.25]), "masker.first_out.1.weight": r(N_SRC * bn, bn, 1, 1),
               "masker.first_out.1.bias": r(N_SRC * bn), "masker.net_out.0.weight": r(bn, bn, 1), "masker.net_out.0.bias": r(bn),
               "masker.net_gate.0.weight": r(bn, bn, 1), "masker.net_gate.0.bias": r(bn), "masker.mask_net.weight": r(n, bn, 1),
               "linear.0.weight": r(64, n), "linear.0.bias": r(64), "linear.1.weight": r(64, 64), "linear.1.bias": r(64),
               "classifier.weight": r(1, 64), "classifier.bias": r(1)})
    return sd


def _gln(x, gamma, beta):
    dims = list(range(1, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = (x - mean).pow(2).mean(dim=dims, keepdim=True)
    normed = (x - mean) / (var + 1e-8).sqrt()
    return (gamma * normed.transpose(1, -1) + beta).transpose(1, -1)


def _bilstm(x, sd, prefix, hid):
    lstm = torch.nn.LSTM(x.shape[-1], hid, batch_first=True, bidirectional=True)
    lstm.load_state_dict({name: sd[prefix + name] for name in lstm.state_dict()})
    return lstm(x)[0]


def reference_forward(sd: dict, x: torch.Tensor, wavlm=None):
    """The reference computation, in asteroid's (B, N, chunk, n_chunks) layout."""
    B, T = x.shape
    tf = F.conv1d(x[:, None], sd["encoder.filterbank._filters"], stride=16)  # linear encoder
    n, L = tf.shape[1:]
    y = tf
    if wavlm is not None:
        w = wavlm(x).last_hidden_state.transpose(1, 2).repeat_interleave(320 // 16, dim=-1)
        w = F.pad(w, [0, L - w.shape[-1]])
        y = torch.cat([tf, w], dim=1)
    y = _gln(y, sd["masker.bottleneck.0.gamma"], sd["masker.bottleneck.0.beta"])
    y = F.conv1d(y, sd["masker.bottleneck.1.weight"], sd["masker.bottleneck.1.bias"])
    bn, K, hid = HP["dprnn"]["bn_chan"], HP["dprnn"]["chunk_size"], HP["dprnn"]["hid_size"]
    hop = K // 2
    u = F.unfold(y.unsqueeze(-1), kernel_size=(K, 1), padding=(K, 0), stride=(hop, 1))
    S = u.shape[-1]
    u = u.reshape(B, bn, K, S)
    for i in range(HP["dprnn"]["n_repeats"]):
        p = f"masker.net.{i}."
        z = u.transpose(1, -1).reshape(B * S, K, bn)
        z = F.linear(_bilstm(z, sd, p + "intra_RNN.rnn.", hid), sd[p + "intra_linear.weight"], sd[p + "intra_linear.bias"])
        z = _gln(z.reshape(B, S, K, bn).transpose(1, -1), sd[p + "intra_norm.gamma"], sd[p + "intra_norm.beta"])
        out = u + z
        z = out.transpose(1, 2).transpose(2, -1).reshape(B * K, S, bn)
        z = F.linear(_bilstm(z, sd, p + "inter_RNN.rnn.", hid), sd[p + "inter_linear.weight"], sd[p + "inter_linear.bias"])
        z = z.reshape(B, K, S, bn).transpose(1, -1).transpose(2, -1)
        u = out + _gln(z, sd[p + "inter_norm.gamma"], sd[p + "inter_norm.beta"])
    z = F.conv2d(F.prelu(u, sd["masker.first_out.0.weight"]), sd["masker.first_out.1.weight"], sd["masker.first_out.1.bias"])
    z = F.fold(z.reshape(B * N_SRC, bn * K, S), (L, 1), kernel_size=(K, 1), padding=(K, 0), stride=(hop, 1)).reshape(B * N_SRC, bn, L)
    z = torch.tanh(F.conv1d(z, sd["masker.net_out.0.weight"], sd["masker.net_out.0.bias"])) * \
        torch.sigmoid(F.conv1d(z, sd["masker.net_gate.0.weight"], sd["masker.net_gate.0.bias"]))
    masks = torch.relu(F.conv1d(z, sd["masker.mask_net.weight"])).view(B, N_SRC, n, L)
    masked = masks * tf.unsqueeze(1)
    flat = masked.reshape(B * N_SRC, n, L)
    sources = F.conv_transpose1d(flat, sd["decoder.filterbank._filters"], stride=16).reshape(B, N_SRC, -1)
    h = F.avg_pool1d(flat, 8, 8).transpose(1, 2)
    for j in range(HP["linear"]["num_layers"]):
        h = F.leaky_relu(F.linear(h, sd[f"linear.{j}.weight"], sd[f"linear.{j}.bias"]))
    act = torch.sigmoid(F.linear(h, sd["classifier.weight"], sd["classifier.bias"])).reshape(B, N_SRC, -1)
    return sources, act


@dataclasses.dataclass
class _Spec:
    problem: object
    resolution: object
    duration: float = 5.0
    classes: list = dataclasses.field(default_factory=lambda: ["speaker#1", "speaker#2", "speaker#3"])


def save_lightning_checkpoint(path, state_dict, hparams=HP):
    """torch.save the way Lightning + pyannote do, including pyannote's Specifications object
    (its classes exist only while saving, so loading cannot import them)."""
    names = ["pyannote.audio", "pyannote.audio.core", "pyannote.audio.core.task"]
    saved = {n: sys.modules.get(n) for n in names}
    task = types.ModuleType("pyannote.audio.core.task")
    Problem = enum.Enum("Problem", {"BINARY_CLASSIFICATION": 0, "MULTI_LABEL_CLASSIFICATION": 2}, module=task.__name__)
    Resolution = enum.Enum("Resolution", {"FRAME": 1, "CHUNK": 2}, module=task.__name__)
    spec_cls = type("Specifications", (_Spec,), {"__module__": task.__name__})
    task.Problem, task.Resolution, task.Specifications = Problem, Resolution, spec_cls
    try:
        sys.modules.update({"pyannote.audio": types.ModuleType("pyannote.audio"), "pyannote.audio.core": types.ModuleType("pyannote.audio.core"),
                            "pyannote.audio.core.task": task})
        ckpt = {"epoch": 3, "global_step": 1200, "pytorch-lightning_version": "2.5.0", "state_dict": state_dict,
                "hyper_parameters": hparams, "hparams_name": "kwargs",
                "pyannote.audio": {"versions": {"pyannote.audio": "4.0.7"}, "architecture": {"module": "pyannote.audio.models.separation.ToTaToNet", "class": "ToTaToNet"},
                                   "specifications": spec_cls(Problem.MULTI_LABEL_CLASSIFICATION, Resolution.FRAME)}}
        torch.save(ckpt, path)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def test_names_map_onto_the_model():
    assert map_name("encoder.filterbank._filters") == "encoder.weight"
    assert map_name("masker.net.5.inter_RNN.rnn.weight_hh_l0_reverse") == "masker.blocks.5.1.rnn.weight_hh_l0_reverse"
    assert map_name("linear.1.bias") == "diarization.mlp.2.bias"
    assert map_name("wavlm.encoder.layers.0.attention.q_proj.weight") == "ssl.model.encoder.layers.0.attention.q_proj.weight"
    assert map_name("something.else") is None


def test_converted_checkpoint_reproduces_reference_forward(tmp_path):
    sd = reference_state_dict(HP["encoder_decoder"]["n_filters"])
    path = tmp_path / "totatonet.ckpt"
    save_lightning_checkpoint(path, sd)
    loaded_before = "pyannote.audio.core.task" in sys.modules  # pyannote.audio may be installed and imported by now
    model = convert_checkpoint(path)
    assert loaded_before or "pyannote.audio.core.task" not in sys.modules  # converting imports nothing of pyannote
    assert model.config.n_sources == N_SRC and model.config.encoder_activation == "none" and model.config.diar_pool == 8
    x = 0.1 * torch.randn(2, 16000 + 32, generator=torch.Generator().manual_seed(1))  # (T - kernel) % stride == 0
    with torch.inference_mode():
        sources, act = model(x)
        ref_sources, ref_act = reference_forward(sd, x)
    assert sources.shape == ref_sources.shape and act.shape == ref_act.shape == (2, N_SRC, model.num_frames(x.shape[1]))
    assert torch.allclose(sources, ref_sources, atol=1e-5, rtol=1e-4)
    assert torch.allclose(act, ref_act, atol=1e-5)
    # load_model accepts the .ckpt too (used by `pixit separate --model x.ckpt`)
    from core.models import load_model

    assert load_model(path).config.to_dict() == model.config.to_dict()


def test_wavlm_checkpoint_converts_and_matches(tmp_path):
    from transformers import WavLMConfig, WavLMModel

    cfg = WavLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[8] * 7,
                      conv_bias=False, feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=16,
                      num_conv_pos_embedding_groups=4, num_buckets=32, layerdrop=0.0, apply_spec_augment=False)
    torch.manual_seed(0)
    wavlm = WavLMModel(cfg).eval()
    sd = reference_state_dict(HP["encoder_decoder"]["n_filters"] + 32, seed=2)
    sd.update({f"wavlm.{k}": v for k, v in wavlm.state_dict().items()})
    path = tmp_path / "wavlm.ckpt"
    save_lightning_checkpoint(path, sd)
    model = convert_checkpoint(path)
    assert model.ssl is not None and model.ssl.hidden_size == 32
    x = 0.1 * torch.randn(1, 16000 + 32, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        sources, act = model(x)
        ref_sources, ref_act = reference_forward(sd, x, wavlm=wavlm)
    assert torch.allclose(sources, ref_sources, atol=1e-4, rtol=1e-3)
    assert torch.allclose(act, ref_act, atol=1e-4)


def test_checkpoint_errors(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": {}, "payload": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(ModelError, match="refusing to unpickle"):
        convert_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="junk.ckpt"):
        convert_checkpoint(tmp_path / "junk.ckpt")
    sd = reference_state_dict(HP["encoder_decoder"]["n_filters"])
    sd["masker.extra.weight"] = torch.zeros(3)
    save_lightning_checkpoint(tmp_path / "extra.ckpt", sd)
    with pytest.raises(ModelError, match="masker.extra.weight"):
        convert_checkpoint(tmp_path / "extra.ckpt")
    with pytest.raises(ModelError, match="no such"):
        convert_checkpoint(tmp_path / "missing.ckpt")


def test_wavlm_large_checkpoint_builds_wavlm_from_its_configuration_alone(tmp_path, monkeypatch):
    """The paper's checkpoint (pyannote/separation-ami-1.0, gated: not reachable here) carries fine-tuned
    WavLM-Large weights. A checkpoint with WavLM-Large's exact tensor names and shapes (built by
    transformers on the meta device, so no 1.2 GB file) converts with every tensor placed, its WavLM
    rebuilt from the tensor shapes as microsoft/wavlm-large's architecture, with the network blocked
    and an empty offline hub cache: nothing is downloaded."""
    import socket

    from huggingface_hub import constants
    from transformers import WavLMConfig, WavLMModel

    from core.models.pyannote_compat import config_from_checkpoint, convert_state_dict
    from core.models.totatonet import ToTaToNet

    def no_network(*args, **kwargs):
        raise OSError("network access in a test that must not download")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    # microsoft/wavlm-large's config.json, its architecture fields (everything else is WavLMConfig's default)
    large = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, conv_bias=False,
                 feat_extract_norm="layer", do_stable_layer_norm=True, num_buckets=320, max_bucket_distance=800,
                 num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16)
    with torch.device("meta"):
        wavlm = WavLMModel(WavLMConfig(**large))
    sd = reference_state_dict(HP["encoder_decoder"]["n_filters"] + 1024)  # the masker sees filters + WavLM features
    sd.update({f"wavlm.{k}": v for k, v in wavlm.state_dict().items()})
    config = config_from_checkpoint({"hyper_parameters": HP, "state_dict": sd})
    rebuilt = config["ssl"]["hf_config"]
    assert {k: rebuilt[k] for k in large} == large
    assert rebuilt["conv_dim"] == [512] * 7 and rebuilt["conv_kernel"] == [10, 3, 3, 3, 3, 2, 2]
    assert rebuilt["conv_stride"] == [5, 2, 2, 2, 2, 2, 2]
    with torch.device("meta"):
        model = ToTaToNet(config)
    state = convert_state_dict(sd, model)  # raises on any unplaced or missing tensor, or a shape that does not fit
    assert set(state) == set(model.state_dict()) and model.ssl.hidden_size == 1024
    assert sum(v.numel() for k, v in state.items() if k.startswith("ssl.model.")) > 300e6  # WavLM-Large: 315 M
