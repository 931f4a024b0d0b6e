"""`pixit export --format pyannote`: checkpoints that pyannote.audio 4 loads and that compute the same
outputs, checked in pyannote.audio's own environment (.venv-pyannote, see requirements/pyannote.in;
those tests are skipped without it) on the shipped real recording. Without pyannote.audio: what
cannot be exported is refused in one line, and exported checkpoints convert back unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.audio import load_audio
from core.errors import ModelError
from core.models import ToTaToNet, load_model
from core.models.pyannote_compat import load_checkpoint
from core.models.pyannote_export import export_pyannote, pyannote_python, run_in_pyannote

ROOT = Path(__file__).resolve().parent.parent
needs_pyannote = pytest.mark.skipif(pyannote_python() is None, reason="no pyannote.audio environment (.venv-pyannote)")


def stock_config(**changes) -> dict:
    """A small model pyannote's ToTaToNet can express: linear encoder, DPRNN, 64-wide head; 2 sources
    and cLN (not pyannote's defaults, so that the checkpoint must carry them)."""
    config = {"n_sources": 2, "n_filters": 16, "kernel_size": 32, "stride": 16, "masker": "dprnn",
              "masker_params": {"bn_chan": 16, "hid_size": 16, "n_repeats": 1, "chunk_size": 50, "hop": 25, "norm": "cLN"},
              "diar_pool": 8, "diar_hidden": 64, "diar_layers": 2, "encoder_activation": "none"}
    return {**config, **changes}


def random_model(config: dict, seed: int = 0) -> ToTaToNet:
    torch.manual_seed(seed)
    net = ToTaToNet(config).eval()
    with torch.no_grad():  # gLN/cLN gains away from 1 and non-zero biases: every tensor matters
        for name, p in net.named_parameters():
            if name.endswith(("gamma", "beta", "norm.weight", "norm.bias", ".bias")):
                p.add_(0.2 * torch.randn_like(p))
    return net


def real_audio(seconds: float) -> np.ndarray:
    """(1, T) of pyannote.audio's real sample; T tiles the encoders exactly ((T - kernel) % stride == 0)."""
    return load_audio(ROOT / "assets" / "real" / "sample.wav")[: int(seconds * 16000)][None]


def windows(path: Path) -> np.ndarray:
    """The recording as consecutive 5 s windows (N, 80000), the chunks pyannote's pipeline feeds the model."""
    audio = load_audio(path)
    return np.stack([audio[i: i + 80000] for i in range(0, len(audio) - 80000 + 1, 80000)])


def outputs(net: ToTaToNet, waveforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        sources, activations = net(torch.from_numpy(waveforms))
    return activations.numpy(), sources.numpy()


def same_architecture(a: ToTaToNet, b: ToTaToNet) -> bool:
    """Equal configs, the DPRNN settings compared with their defaults filled in (a converted model spells them out)."""
    from core.models.pyannote_export import _dprnn_settings

    strip = lambda net: {k: v for k, v in net.config.to_dict().items() if k != "masker_params"}  # noqa: E731
    return strip(a) == strip(b) and _dprnn_settings(a) == _dprnn_settings(b)


def test_what_pyannote_cannot_compute_is_refused(tmp_path):
    with pytest.raises(ModelError, match="masker is 'convtasnet'"):
        export_pyannote(random_model(stock_config(masker="convtasnet", masker_params={})), tmp_path)
    with pytest.raises(ModelError, match=r"head has 2 layer\(s\) of 16, pyannote's classifier is Linear\(64, 1\)"):
        export_pyannote(random_model(stock_config(diar_hidden=16)), tmp_path)
    with pytest.raises(ModelError, match="ReLU after its encoder .* --relu-subclass"):
        export_pyannote("default", tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written
    target = export_pyannote(random_model(stock_config()), tmp_path)
    with pytest.raises(Exception, match="exists"):
        export_pyannote(random_model(stock_config()), tmp_path)
    assert target == tmp_path / "pytorch_model.bin"


def test_ssl_front_end_must_be_used_as_pyannote_uses_wavlm(tmp_path):
    from test_ssl import _save_tiny

    folder = _save_tiny("wavlm", tmp_path / "wavlm")
    weighted = stock_config(ssl={"name_or_path": str(folder)})  # weighted layers + projection: this project's way
    with pytest.raises(ModelError, match="not used the way pyannote uses WavLM"):
        export_pyannote(random_model(weighted), tmp_path / "out")


def test_exported_checkpoint_holds_what_pyannote_does_not_save_and_converts_back(tmp_path):
    net = random_model(stock_config())
    path = export_pyannote(net, tmp_path / "out")
    ckpt = load_checkpoint(path)  # weights-only, as this project reads every checkpoint
    hp = ckpt["hyper_parameters"]
    assert hp["use_wavlm"] is False and hp["n_sources"] == 2  # trap 1: pyannote saves neither
    assert hp["dprnn"]["norm_type"] == "cLN" and hp["diar"]["frames_per_second"] == 125
    meta = ckpt["pyannote.audio"]
    assert meta["architecture"] == {"module": "pyannote.audio.models.separation.ToTaToNet", "class": "ToTaToNet"}
    diarization, separation = meta["specifications"]
    assert type(diarization).__module__ == "pyannote.audio.core.task" and diarization.problem.value == 2
    assert diarization.classes == ["speaker#1", "speaker#2"] and diarization.duration == 5.0
    back = load_model(tmp_path / "out")  # the folder, as pyannote's from_pretrained takes it
    assert same_architecture(back, net)
    x = real_audio(2.0)
    for ours, theirs in zip(outputs(net, x), outputs(back, x)):
        assert np.array_equal(ours, theirs)

    default = load_model("default")
    path = export_pyannote(default, tmp_path / "default", relu_subclass=True)
    assert load_checkpoint(path)["pyannote.audio"]["architecture"] == {
        "module": "core.models.pyannote_arch", "class": "ToTaToNetEncoderReLU"}
    back = load_model(path)
    assert back.config.encoder_activation == "relu" and same_architecture(back, default)


def _stock_class_copy(relu_checkpoint: Path, out: Path) -> Path:
    """The same checkpoint naming pyannote's own ToTaToNet (what exporting without handling the ReLU gives)."""
    from core.models.pyannote_export import _PICKLE_MODULE

    ckpt = load_checkpoint(relu_checkpoint)
    ckpt["pyannote.audio"]["architecture"] = {"module": "pyannote.audio.models.separation.ToTaToNet", "class": "ToTaToNet"}
    out.mkdir()
    torch.save(ckpt, out / "pytorch_model.bin", pickle_module=_PICKLE_MODULE)
    return out / "pytorch_model.bin"


@needs_pyannote
def test_pyannote_loads_exports_and_computes_the_same(tmp_path, monkeypatch):
    """One pyannote.audio process loads three exports (Model.from_pretrained on the folder, offline) and
    runs them on the 5 s windows of the real sample (6) and of the demo meeting (15): a WavLM-less
    model with 2 sources and cLN, the shipped default model's weights under pyannote's own class (the
    ReLU trap: printed, how many activation frames flip), and a model with a (tiny) WavLM front end."""
    from huggingface_hub import constants
    from test_ssl import _save_tiny

    # pyannote builds microsoft/wavlm-large from the hub for a WavLM checkpoint: a tiny one in the cache
    from hub_fixtures import write_hub_cache

    cache = tmp_path / "hf-cache"
    wavlm = _save_tiny("wavlm", tmp_path / "wavlm", do_stable_layer_norm=True, feat_extract_norm="layer")
    write_hub_cache(cache, "microsoft/wavlm-large", {p.name: p for p in wavlm.iterdir()})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    plain = random_model(stock_config())
    ssl = random_model(stock_config(ssl={"name_or_path": str(wavlm), "layers": "last", "normalize": False, "proj_dim": 0,
                                         "combine": "concat", "upsample": "repeat"}), seed=1)
    default = load_model("default")
    checkpoints = [export_pyannote(plain, tmp_path / "plain"),
                   _stock_class_copy(export_pyannote(default, tmp_path / "relu", relu_subclass=True), tmp_path / "stock"),
                   export_pyannote(ssl, tmp_path / "wavlm-model")]
    real, demo = windows(ROOT / "assets" / "real" / "sample.wav"), windows(ROOT / "assets" / "demo" / "demo000.wav")
    x = np.concatenate([real, demo])
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf-home")}
    results = run_in_pyannote([c.parent for c in checkpoints], x, env=env)

    for net, (activations, sources) in zip((plain, ssl), (results[0], results[2])):
        ours_act, ours_src = outputs(net, x)
        assert activations.shape == ours_act.shape and sources.shape == ours_src.shape
        assert np.abs(activations - ours_act).max() < 1e-5
        assert np.abs(sources - ours_src).max() < 1e-5 * max(1.0, np.abs(ours_src).max())
    # the default model's weights without its ReLU: a different function (so it is refused by default)
    flips = ((results[1][0] > 0.5) != (outputs(default, x)[0] > 0.5)).mean(axis=(1, 2))
    for name, part in (("real sample", flips[: len(real)]), ("demo meeting", flips[len(real):])):
        assert part.mean() > 0.05, part
        print(f"default model under pyannote's linear encoder, {name}: {part.mean():.1%} of activation frames flip at 0.5")


@needs_pyannote
def test_cli_export_and_check(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}

    def pixit(*args):
        return subprocess.run([sys.executable, "-m", "core.cli", "export", *map(str, args)], capture_output=True,
                              text=True, cwd=ROOT, env=env, timeout=900)

    refused = pixit("default", tmp_path / "out")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.count("\n") == 1 and "pixit export: error: cannot export for pyannote.audio" in refused.stderr
    done = pixit("default", tmp_path / "out", "--relu-subclass", "--check")
    assert done.returncode == 0, done.stderr
    assert "checked in pyannote.audio: activations differ by at most" in done.stdout
    again = pixit("default", tmp_path / "out", "--relu-subclass")
    assert again.returncode == 2 and "exists (pass --overwrite" in again.stderr
    # back into this project's format, with the pipeline parameters kept
    converted = subprocess.run([sys.executable, "-m", "core.cli", "export", tmp_path / "out", tmp_path / "folder",
                                "--format", "pixit"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert converted.returncode == 0, converted.stderr
    assert json.loads((tmp_path / "folder" / "config.json").read_text())["encoder_activation"] == "relu"
    assert (tmp_path / "folder" / "params.json").read_text() == (ROOT / "assets/models/default/params.json").read_text()
    a, b = load_model("default").state_dict(), load_model(tmp_path / "folder").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
