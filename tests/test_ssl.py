"""SSL front end: tiny random WavLM / HuBERT / w2v-BERT saved with save_pretrained and loaded
through the real from_pretrained path; layer weighting, freezing, offline save/load."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from core.errors import ModelError
from core.models import ToTaToNet, ToTaToNetConfig, load_model
from core.models.ssl import SSLFrontEnd

torch.set_num_threads(2)

CONV = dict(conv_dim=(16, 16, 16), conv_stride=(5, 8, 8), conv_kernel=(10, 8, 8), conv_bias=False,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _save_tiny(kind: str, folder, **kw):
    import transformers as tr

    torch.manual_seed(0)
    if kind == "wavlm":
        model = tr.WavLMModel(tr.WavLMConfig(**TINY, **CONV, num_buckets=16, max_bucket_distance=40, **kw))
    elif kind == "hubert":
        model = tr.HubertModel(tr.HubertConfig(**TINY, **CONV, **kw))
    elif kind == "w2v-bert":
        model = tr.Wav2Vec2BertModel(tr.Wav2Vec2BertConfig(**TINY, output_hidden_size=32,
                                                           conv_depthwise_kernel_size=3, **kw))
    else:
        raise ValueError(kind)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def wavlm_dir(tmp_path_factory):
    # WavLM-Large style: stable layer norm and layer-normalised conv features
    return _save_tiny("wavlm", tmp_path_factory.mktemp("wavlm"), do_stable_layer_norm=True,
                      feat_extract_norm="layer")


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory):
    return _save_tiny("hubert", tmp_path_factory.mktemp("hubert"))


def small_model_config(ssl: dict) -> ToTaToNetConfig:
    return ToTaToNetConfig(n_filters=16, masker_params=dict(bn_chan=16, hid_size=16, chunk_size=20, hop=10,
                                                             n_repeats=1), diar_hidden=8, ssl=ssl)


@pytest.mark.parametrize("kind", ["wavlm", "hubert"])
def test_weighted_layers(kind, wavlm_dir, hubert_dir):
    folder = wavlm_dir if kind == "wavlm" else hubert_dir
    fe = SSLFrontEnd({"name_or_path": str(folder)})
    assert fe.hop_length == 320 and fe.hidden_size == 32
    w = fe.layer_weights()
    assert w.shape == (3,) and np.isclose(w.sum(), 1.0)
    feats = fe(torch.randn(2, 16000))
    assert feats.shape == (2, 32, 49)  # 50 Hz
    feats.pow(2).mean().backward()
    assert fe.weights.grad is not None and fe.weights.grad.abs().sum() > 0
    assert any(p.grad is not None for p in fe.model.parameters())
    # layerdrop and SpecAugment are off unless asked for
    assert fe.model.config.layerdrop == 0.0 and fe.model.config.apply_spec_augment is False


def test_weighted_sum_matches_hidden_states(wavlm_dir):
    fe = SSLFrontEnd({"name_or_path": str(wavlm_dir), "normalize": False}).eval()
    with torch.no_grad():
        fe.weights.copy_(torch.tensor([0.0, 0.0, 30.0]))  # ~all weight on the last state
        x = torch.randn(1, 8000)
        out = fe.model(input_values=x)
        torch.testing.assert_close(fe(x), out.last_hidden_state.transpose(1, 2), rtol=1e-4, atol=1e-4)
        fe.weights.copy_(torch.tensor([0.0, 30.0, 0.0]))  # the first transformer layer's output
        hs = fe.model(input_values=x, output_hidden_states=True).hidden_states
        torch.testing.assert_close(fe(x), hs[1].transpose(1, 2), rtol=1e-4, atol=1e-4)


def test_frozen_has_no_ssl_grads(wavlm_dir):
    fe = SSLFrontEnd({"name_or_path": str(wavlm_dir), "frozen": True}).train()
    assert not fe.model.training  # frozen stays in eval mode (no dropout)
    fe(torch.randn(2, 8000)).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in fe.model.parameters())
    assert fe.weights.grad is not None  # the layer weights still learn


def test_last_layer_mode(hubert_dir):
    fe = SSLFrontEnd({"name_or_path": str(hubert_dir), "layers": "last"}).eval()
    assert fe.weights is None
    np.testing.assert_array_equal(fe.layer_weights(), [0, 0, 1])
    x = torch.randn(1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(fe(x), fe.model(input_values=x).last_hidden_state.transpose(1, 2))


def test_layerdrop_and_spec_augment_are_explicit(wavlm_dir):
    fe = SSLFrontEnd({"name_or_path": str(wavlm_dir), "layerdrop": 1.0, "spec_augment": True}).train()
    assert fe.model.config.layerdrop == 1.0 and fe.model.config.apply_spec_augment is True
    feats = fe(torch.randn(2, 16000))  # layers skipped: still L+1 states, no error
    assert feats.shape == (2, 32, 49)


def test_normalisation_decision(tmp_path, wavlm_dir, hubert_dir):
    from transformers import Wav2Vec2FeatureExtractor

    # no feature extractor config: follow feat_extract_norm (layer -> normalise, group -> not)
    assert SSLFrontEnd({"name_or_path": str(wavlm_dir)}).config_dict()["normalize"] is True
    assert SSLFrontEnd({"name_or_path": str(hubert_dir)}).config_dict()["normalize"] is False
    # with a feature extractor config: its do_normalize wins
    folder = tmp_path / "hubert_norm"
    shutil.copytree(hubert_dir, folder)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(folder)
    fe = SSLFrontEnd({"name_or_path": str(folder)}).eval()
    assert fe.config_dict()["normalize"] is True
    x = torch.randn(1, 8000)
    with torch.no_grad():  # per-utterance normalisation: invariant to gain and offset
        torch.testing.assert_close(fe(x), fe(3.0 * x + 0.1), rtol=1e-3, atol=1e-3)
    assert SSLFrontEnd({"name_or_path": str(folder), "normalize": False}).config_dict()["normalize"] is False


def test_missing_model_is_model_error(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from core.errors import HubError

    with pytest.raises(ModelError, match="local folder"):
        SSLFrontEnd({"name_or_path": str(tmp_path / "no-such-wavlm")})
    with pytest.raises(ModelError, match="could not be loaded from its local folder"):
        SSLFrontEnd({"name_or_path": str(tmp_path)})  # a folder without a model
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="nobody-has/this-model-xyz is not in the Hugging Face cache"):
        SSLFrontEnd({"name_or_path": "nobody-has/this-model-xyz"})  # a hub id: offline, not cached
    with pytest.raises(ModelError):
        SSLFrontEnd({})
    with pytest.raises(ModelError, match="local folder"):
        ToTaToNet(small_model_config({"name_or_path": str(tmp_path / "missing")}))


@pytest.mark.parametrize("kind", ["wavlm", "hubert"])
def test_totatonet_with_ssl_reloads_without_original_folder(tmp_path, kind):
    folder = _save_tiny(kind, tmp_path / kind)
    torch.manual_seed(1)
    model = ToTaToNet(small_model_config({"name_or_path": str(folder)})).eval()
    x = torch.randn(2, 23000)
    with torch.no_grad():
        model.ssl.weights.copy_(torch.tensor([0.5, -1.0, 2.0]))
        s1, a1 = model(x)
    assert s1.shape == (2, 3, 23000) and a1.shape == (2, 3, model.num_frames(23000))
    model.save(tmp_path / "saved")
    shutil.rmtree(folder)
    loaded = load_model(tmp_path / "saved")
    with torch.no_grad():
        s2, a2 = loaded(x)
    assert torch.equal(s1, s2) and torch.equal(a1, a2)
    np.testing.assert_allclose(loaded.layer_weights(), model.layer_weights())
    assert loaded.config.ssl["hf_config"]["model_type"] == kind


def test_ssl_projection_and_parameter_groups(wavlm_dir):
    model = ToTaToNet(small_model_config({"name_or_path": str(wavlm_dir), "proj_dim": 24}))
    assert model.masker.bottleneck.in_channels == 16 + 24
    t = 16000
    feats = model._ssl_features(torch.randn(1, t), model.num_encoder_frames(t))
    assert feats.shape == (1, 24, model.num_encoder_frames(t))
    # nearest upsampling: runs of about 20 identical encoder frames per 50 Hz SSL frame
    changes = (feats[0, 0, 1:] != feats[0, 0, :-1]).sum().item()
    assert 45 <= changes <= 49
    groups = {g["name"]: g for g in model.parameter_groups(lr=3e-4, ssl_lr=1e-5)}
    assert groups["ssl"]["lr"] == 1e-5 and groups["main"]["lr"] == 3e-4
    ssl_ids = {id(p) for p in model.ssl.model.parameters()}
    assert {id(p) for p in groups["ssl"]["params"]} == ssl_ids
    assert any(p is model.ssl.weights for p in groups["main"]["params"])
    n = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())
    sources, act = model(torch.randn(2, 8000))
    act.mean().backward()
    assert model.ssl.weights.grad is not None


def test_add_combination(wavlm_dir):
    model = ToTaToNet(small_model_config({"name_or_path": str(wavlm_dir), "combine": "add"})).eval()
    assert model.masker.bottleneck.in_channels == 16
    with torch.no_grad():
        sources, act = model(torch.randn(1, 9000))
    assert sources.shape == (1, 3, 9000)


def test_w2v_bert_fbank_front_end(tmp_path):
    folder = _save_tiny("w2v-bert", tmp_path / "w2vbert")
    torch.manual_seed(0)
    model = ToTaToNet(small_model_config({"name_or_path": str(folder)})).eval()
    assert model.ssl.uses_fbank and model.ssl.hop_length == 320
    x = torch.randn(2, 16000)
    with torch.no_grad():
        s1, a1 = model(x)
        assert model.ssl(x).shape[-1] == 49
    model.save(tmp_path / "saved")
    shutil.rmtree(folder)
    with torch.no_grad():
        s2, a2 = load_model(tmp_path / "saved")(x)
    assert torch.equal(s1, s2) and torch.equal(a1, a2)


def test_pyannote_style_ssl_layout(wavlm_dir):
    """proj_dim=0 + upsample='repeat' reproduce pyannote's repeat_interleave(20) + zero padding."""
    ssl = {"name_or_path": str(wavlm_dir), "layers": "last", "normalize": False, "proj_dim": 0,
           "upsample": "repeat"}
    model = ToTaToNet(small_model_config(ssl)).eval()
    assert model.ssl_proj is None and model.masker.bottleneck.in_channels == 16 + 32
    x = torch.randn(1, 16000)
    n_enc = model.num_encoder_frames(16000)
    with torch.no_grad():
        feats = model._ssl_features(x, n_enc)
        raw = model.ssl(x).repeat_interleave(20, dim=-1)
    expected = torch.zeros(1, 32, n_enc)
    expected[..., : min(n_enc, raw.shape[-1])] = raw[..., :n_enc]
    torch.testing.assert_close(feats, expected)
    assert model.config.ssl["upsample"] == "repeat" and model.config.ssl["proj_dim"] == 0


def test_non_speech_model_is_model_error(tmp_path):
    import transformers as tr

    tr.BertModel(tr.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, vocab_size=50)).save_pretrained(tmp_path / "bert")
    with pytest.raises(ModelError, match="unsupported SSL model type 'bert'"):
        SSLFrontEnd({"name_or_path": str(tmp_path / "bert")})
