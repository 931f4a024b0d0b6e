"""ToTaToNet and maskers: shapes, source/speaker alignment, batch independence, save/load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from core.errors import ModelError
from core.models import ToTaToNet, ToTaToNetConfig, count_parameters, load_model, resolve_model_path
from core.models.maskers import MASKERS, build_masker

torch.set_num_threads(2)

TINY_MASKERS = {
    "dprnn": dict(bn_chan=16, hid_size=16, chunk_size=20, hop=10, n_repeats=1),
    "convtasnet": dict(bn_chan=16, hid_chan=32, skip_chan=16, n_blocks=3, n_repeats=1),
    "sepformer": dict(bn_chan=16, chunk_size=20, hop=10, n_repeats=1, intra_layers=1, inter_layers=1,
                      n_heads=2, ffn=32),
    "spgm": dict(bn_chan=16, chunk_size=20, hop=10, n_repeats=2, intra_layers=1, n_heads=2, ffn=32),
}


def tiny_config(masker: str = "dprnn", **kw) -> ToTaToNetConfig:
    return ToTaToNetConfig(n_sources=3, n_filters=16, kernel_size=32, stride=16, masker=masker,
                           masker_params=dict(TINY_MASKERS[masker]), diar_hidden=8, **kw)


def tiny_model(masker: str = "dprnn", seed: int = 0, **kw) -> ToTaToNet:
    torch.manual_seed(seed)
    return ToTaToNet(tiny_config(masker, **kw)).eval()


def test_every_masker_is_tested():
    assert set(TINY_MASKERS) == set(MASKERS)


@pytest.mark.parametrize("name", sorted(TINY_MASKERS))
@pytest.mark.parametrize("length", [1, 9, 20, 57])
def test_masker_shapes_any_length(name, length):
    torch.manual_seed(0)
    masker = build_masker(name, 24, 3, 16, **TINY_MASKERS[name]).eval()
    with torch.no_grad():
        masks = masker(torch.randn(2, 24, length))
    assert masks.shape == (2, 3, 16, length)
    assert torch.isfinite(masks).all() and (masks >= 0).all()


def test_mask_activation_sigmoid_bounded():
    masker = build_masker("dprnn", 8, 2, 8, mask_act="sigmoid", **{**TINY_MASKERS["dprnn"]}).eval()
    with torch.no_grad():
        m = masker(torch.randn(1, 8, 30) * 10)
    assert (m >= 0).all() and (m <= 1).all()


def test_unknown_masker_is_model_error():
    with pytest.raises(ModelError, match="unknown masker"):
        ToTaToNet(ToTaToNetConfig(masker="nope"))
    with pytest.raises(ModelError, match="bad masker settings"):
        ToTaToNet(ToTaToNetConfig(masker_params={"no_such_param": 1}))


@pytest.mark.parametrize("name", sorted(TINY_MASKERS))
def test_masker_batch_independence(name):
    """Changing batch item 1 must not change item 0 (gLN, SPGM pooling are per item)."""
    torch.manual_seed(0)
    masker = build_masker(name, 12, 2, 8, **TINY_MASKERS[name]).eval()
    x = torch.randn(2, 12, 45)
    y = x.clone()
    y[1] = torch.randn(12, 45) * 5 + 3
    with torch.no_grad():
        a, b = masker(x), masker(y)
    torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a[1], b[1])


def test_spgm_modulation_pools_per_item():
    """The SPGM global vector of item 0 equals the one computed on item 0 alone."""
    torch.manual_seed(0)
    masker = build_masker("spgm", 12, 2, 8, **TINY_MASKERS["spgm"]).eval()
    modulation = masker.blocks[0][1]
    h = torch.randn(3, 16, 4, 20)
    e_batch = modulation.pooled(h)
    e_single = modulation.pooled(h[:1])
    assert e_batch.shape == (3, 16)
    torch.testing.assert_close(e_batch[:1], e_single)
    assert not torch.allclose(e_batch[0], e_batch[1])


@pytest.mark.parametrize("name", sorted(TINY_MASKERS))
@pytest.mark.parametrize("seconds", [1.0, 2.3])
def test_totatonet_shapes(name, seconds):
    model = tiny_model(name)
    t = int(seconds * 16000)
    with torch.no_grad():
        sources, activations = model(torch.randn(2, t))
    assert sources.shape == (2, 3, t)
    assert activations.shape == (2, 3, model.num_frames(t))
    assert ((activations >= 0) & (activations <= 1)).all()
    assert torch.isfinite(sources).all()


@pytest.mark.parametrize("t", [1, 31, 32, 33, 160, 16001])
def test_odd_lengths(t):
    model = tiny_model()
    with torch.no_grad():
        sources, activations = model(torch.randn(1, t))
    assert sources.shape == (1, 3, t)
    assert activations.shape[-1] == model.num_frames(t)


def test_paper_geometry():
    model = ToTaToNet(ToTaToNetConfig(masker_params=dict(n_repeats=1)))
    assert model.num_frames(80000) == 624  # 5 s chunk, 125 frames per second
    assert model.frame_step == 128 and model.frame_size == 32 + 7 * 16
    # the last frame lies inside the chunk
    assert (model.num_frames(80000) - 1) * model.frame_step + model.frame_size <= 80000


def _run_with_masks_edited(model, x, edit):
    handle = model.masker.register_forward_hook(lambda mod, inp, out: edit(out.clone()))
    try:
        with torch.no_grad():
            return model(x)
    finally:
        handle.remove()


@pytest.mark.parametrize("j", [0, 2])
def test_activation_k_depends_only_on_source_k(j):
    model = tiny_model()
    x = torch.randn(2, 8000)
    with torch.no_grad():
        sources, act = model(x)

    def zero_j(masks):
        masks[:, j] = 0
        return masks

    sources2, act2 = _run_with_masks_edited(model, x, zero_j)
    others = [k for k in range(3) if k != j]
    torch.testing.assert_close(act2[:, others], act[:, others])
    torch.testing.assert_close(sources2[:, others], sources[:, others])
    assert not torch.allclose(act2[:, j], act[:, j])
    assert torch.count_nonzero(sources2[:, j]) == 0


def test_activation_gradient_only_from_own_masks():
    model = tiny_model()
    captured = {}

    def keep(mod, inp, out):
        out.retain_grad()
        captured["masks"] = out

    handle = model.masker.register_forward_hook(keep)
    _, act = model(torch.randn(1, 4000))
    handle.remove()
    act[:, 1].sum().backward()
    grad = captured["masks"].grad
    assert grad[:, 1].abs().sum() > 0
    assert grad[:, 0].abs().sum() == 0 and grad[:, 2].abs().sum() == 0


def test_training_step_reaches_all_parameters():
    model = tiny_model("spgm").train()
    sources, act = model(torch.randn(2, 4000))
    (sources.pow(2).mean() + act.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_parameter_groups_and_count():
    model = tiny_model()
    groups = model.parameter_groups(lr=3e-4, ssl_lr=1e-5)
    assert len(groups) == 1 and groups[0]["lr"] == 3e-4
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(model)
    assert model.layer_weights() is None


@pytest.mark.parametrize("name", ["dprnn", "spgm", "convtasnet"])
def test_save_load_round_trip(tmp_path, name):
    model = tiny_model(name, seed=3)
    x = torch.randn(2, 12345)
    with torch.no_grad():
        s1, a1 = model(x)
    out = tmp_path / "m"
    model.save(out)
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp folder left behind
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "pixit-totatonet" and config["version"] == 1
    loaded = load_model(out)
    assert not loaded.training
    assert loaded.config == model.config
    with torch.no_grad():
        s2, a2 = loaded(x)
    assert torch.equal(s1, s2) and torch.equal(a1, a2)
    # saving again over an existing folder works (atomic replace) and with a str path
    tiny_model(name, seed=4).save(str(out))
    with torch.no_grad():
        s3, _ = load_model(str(out))(x)
    assert not torch.equal(s1, s3)


def test_config_round_trip():
    c = tiny_config("sepformer")
    assert ToTaToNetConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ModelError, match="unknown model config keys: bogus"):
        ToTaToNetConfig.from_dict({**c.to_dict(), "bogus": 1})


def test_load_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="is not a model folder: expected config.json and model.safetensors"):
        load_model(empty)
    with pytest.raises(ModelError, match="is not a model folder"):
        load_model(tmp_path / "does-not-exist")
    random_file = tmp_path / "random.txt"
    random_file.write_bytes(os.urandom(100))
    with pytest.raises(ModelError, match="is not a model folder"):
        load_model(random_file)
    random_file = random_file.rename(tmp_path / "random.bin")  # checkpoint suffixes are read as pyannote checkpoints
    with pytest.raises(ModelError, match="random.bin: not a readable PyTorch checkpoint"):
        load_model(random_file)

    good = tmp_path / "good"
    tiny_model().save(good)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "config.json").write_text("{not json")
    (garbage / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="not a valid model config"):
        load_model(garbage)
    (garbage / "config.json").write_text(json.dumps({"n_filters": "many"}))
    with pytest.raises(ModelError):
        load_model(garbage)
    (garbage / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelError, match="format"):
        load_model(garbage)

    # config and weights that do not match
    mismatch = tmp_path / "mismatch"
    mismatch.mkdir()
    cfg = json.loads((good / "config.json").read_text())
    cfg["n_filters"] = 8
    (mismatch / "config.json").write_text(json.dumps(cfg))
    (mismatch / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="does not match"):
        load_model(mismatch)

    # corrupt weights file
    (mismatch / "config.json").write_text((good / "config.json").read_text())
    (mismatch / "model.safetensors").write_bytes(os.urandom(64))
    with pytest.raises(ModelError, match="cannot be read"):
        load_model(mismatch)

    # messages are one line
    try:
        load_model(empty)
    except ModelError as e:
        assert "\n" not in str(e)


def test_default_name_resolves_to_assets(tmp_path, monkeypatch):
    import core

    path = resolve_model_path("default")
    assert path == Path(core.__file__).resolve().parent.parent / "assets" / "models" / "default"
    local = tmp_path / "some" / "folder"  # an existing local path wins over a hub id of the same shape
    tiny_model().save(local)
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("some/folder") == Path("some/folder")
    if not (path / "config.json").exists():
        with pytest.raises(ModelError, match="is not a model folder"):
            load_model("default")
    else:
        assert isinstance(load_model("default"), ToTaToNet)


def test_layer_weights_none_without_ssl():
    assert tiny_model().layer_weights() is None


@pytest.mark.parametrize("length", [1, 50, 99, 100, 101, 437])
def test_chunking_is_asteroid_style(length):
    """Chunks pad chunk_size on both sides; with hop = chunk/2 each frame is in exactly 2 chunks."""
    from core.models.maskers import chunk, overlap_add

    x = torch.randn(2, 3, length)
    chunks = chunk(x, 100, 50)
    assert chunks.shape == (2, 3, (length + 100) // 50 + 1, 100)
    torch.testing.assert_close(chunks[:, :, 2, :], x[..., :100] if length >= 100 else
                               torch.nn.functional.pad(x, (0, 100 - length)))  # chunk 2 starts at 0
    torch.testing.assert_close(overlap_add(chunks, length, 50), 2 * x)


def test_encoder_activation_option():
    model = tiny_model(encoder_activation="none")
    with torch.no_grad():
        sources, _ = model(torch.randn(1, 4000))
    assert sources.shape == (1, 3, 4000)
    with pytest.raises(ModelError, match="encoder_activation"):
        tiny_model(encoder_activation="tanh")


@pytest.mark.parametrize("t", [16000, 16001, 80000 - 7])
def test_inference_decoder_equals_the_transposed_convolution(t):
    """Without autograd the decoder is a matrix product + overlap-add: the same sources as the module."""
    net = tiny_model()
    x = torch.randn(2, t)
    with torch.no_grad():
        masked, _ = net.analyse(x)
        flat = masked.reshape(-1, *masked.shape[2:])
        fast = net.decode(flat, t)
        module = net.decoder(flat)[:, 0, :t]
    assert fast.shape == (2 * net.config.n_sources, t)
    assert torch.allclose(fast, module, atol=1e-6)
    sources, _ = net(x)  # the training path (autograd on) uses the module
    assert torch.allclose(sources.detach().reshape(-1, t), fast, atol=1e-6)
