"""Models by Hugging Face Hub id (`org/name[@revision]`), resolved by core/models/resolve.py through
huggingface_hub.

In this process: a hub cache laid out on disk exactly as the hub client writes it (see
hub_fixtures.write_hub_cache) read with HF_HUB_OFFLINE=1, which is the same code path as after a
download. Through the real CLI: downloads into an empty cache from `FakeHub`, a local server that
answers like the Hub (including its error headers for gated / unknown repos and revisions), a port
nothing listens on for "no network", and offline mode with an empty cache. Not reachable here: the
real huggingface.co (its answers are reproduced by FakeHub only as far as huggingface_hub reads them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hub_fixtures import FakeHub, closed_port, commit_hash, hub_env, write_hub_cache

from core.errors import HubError, ModelError
from core.hub import parse_hub_id
from core.models import load_model, resolve_model
from core.models.totatonet import ToTaToNet

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty hub cache, HF_HUB_OFFLINE on (for this process: huggingface_hub read both at import)."""
    from huggingface_hub import constants

    from core.models import resolve

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(resolve, "_HUB_MEMO", {})
    return cache


def model_files(folder: Path, seed: int, params: str | None = None) -> dict:
    from conftest import pipeline_model_config

    torch.manual_seed(seed)
    ToTaToNet(pipeline_model_config()).save(folder)
    files = {name: folder / name for name in ("config.json", "model.safetensors")}
    if params is not None:
        files["params.json"] = params
    return files


def pyannote_checkpoint(path: Path) -> Path:
    from test_pyannote_compat import HP, reference_state_dict, save_lightning_checkpoint

    save_lightning_checkpoint(path, reference_state_dict(HP["encoder_decoder"]["n_filters"]))
    return path


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_parse_hub_id():
    assert parse_hub_id("pyannote/separation-ami-1.0") == ("pyannote/separation-ami-1.0", None)
    assert parse_hub_id("org/name@v1.2") == ("org/name", "v1.2")
    assert parse_hub_id("org/name@" + "a" * 40) == ("org/name", "a" * 40)
    assert parse_hub_id("org/name@refs/pr/3") == ("org/name", "refs/pr/3")
    for not_an_id in ("default", "runs/ft/model", "/abs/path", "./org/name", "org/na..me", "org/-x-", "org--a/b", "a/b c", ""):
        assert parse_hub_id(not_an_id) is None, not_an_id


def test_own_format_by_hub_id_from_the_cache(offline_cache, tmp_path, monkeypatch):
    from core.pipeline import PipelineParams

    main = write_hub_cache(offline_cache, "org/model", model_files(tmp_path / "m1", 1, '{"threshold": 0.42}'))
    v2 = commit_hash("second")
    write_hub_cache(offline_cache, "org/model", model_files(tmp_path / "m2", 2), commit=v2, ref="v2")

    source = resolve_model("org/model")
    assert (source.kind, source.path, source.repo_id, source.revision) == ("pixit", main, "org/model", None)
    assert same_weights(load_model("org/model"), load_model(tmp_path / "m1"))
    assert PipelineParams.for_model("org/model").threshold == 0.42  # the repo's params.json

    for name in ("org/model@v2", f"org/model@{v2}"):  # a branch or a commit
        assert resolve_model(name).path.name == v2
        assert same_weights(load_model(name), load_model(tmp_path / "m2"))
    assert PipelineParams.for_model("org/model@v2").threshold == PipelineParams().threshold  # no params.json there

    local = tmp_path / "org" / "model"  # an existing local path of the same shape wins
    model_files(local, 3)
    monkeypatch.chdir(tmp_path)
    assert resolve_model("org/model").kind == "pixit" and resolve_model("org/model").repo_id is None


def test_pyannote_checkpoint_by_hub_id_from_the_cache(offline_cache, tmp_path):
    from core.models.pyannote_compat import convert_checkpoint

    ckpt = pyannote_checkpoint(tmp_path / "pytorch_model.bin")
    write_hub_cache(offline_cache, "pyannote/separation-ami-1.0", {"pytorch_model.bin": ckpt, "README.md": "gated"})
    source = resolve_model("pyannote/separation-ami-1.0")
    assert source.kind == "pyannote" and source.path.name == "pytorch_model.bin"
    assert same_weights(load_model("pyannote/separation-ami-1.0"), convert_checkpoint(ckpt))
    # the same checkpoint as a local folder (what `pixit export --format pyannote` writes) or file
    assert resolve_model(ckpt.parent).kind == "pyannote" and resolve_model(ckpt).kind == "pyannote"


def test_hub_id_errors_offline(offline_cache, tmp_path):
    with pytest.raises(HubError, match=r"org/absent is not in the Hugging Face cache \(.*hf-cache\) and HF_HUB_OFFLINE is set"):
        resolve_model("org/absent")
    write_hub_cache(offline_cache, "org/readme-only", {"README.md": "nothing else"})
    with pytest.raises(ModelError, match="org/readme-only holds no model this program reads"):
        resolve_model("org/readme-only")
    with pytest.raises(ModelError, match="no such file or folder"):
        resolve_model("not-a-folder")
    with pytest.raises(ModelError, match="is not a model folder"):
        resolve_model(tmp_path / "org" / "name")  # a Path is always local


# ------------------------------------------------------------------------------- the CLI, FakeHub
def start_pixit(*args, env: dict) -> subprocess.Popen:
    env = {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "core.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def pixit(*args, env: dict) -> subprocess.CompletedProcess:
    return finish(start_pixit(*args, env=env))


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pixit separate: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    from conftest import write_meeting

    return write_meeting(tmp_path_factory.mktemp("hub-audio"), "meeting", duration=6.0, num_speakers=2, seed=5)["audio"]


def test_cli_downloads_a_model_by_name_then_works_offline(audio, tmp_path):
    files = model_files(tmp_path / "m", 1, '{"threshold": 0.4, "embedding": "mfcc"}')
    cache, token = tmp_path / "cache", "hf_test_secret_token_123"
    with FakeHub() as hub:
        hub.add("org/model", files, revisions={"main": commit_hash("a"), "v2": commit_hash("b")})
        proc = pixit("separate", audio, "--out", tmp_path / "out", "--model", "org/model@v2", "--device", "cpu",
                     env=hub_env(cache, offline=False, endpoint=hub.url, token=token))
        assert proc.returncode == 0, proc.stderr
        auth = {h.get("authorization") for method, path, h, _ in hub.requests if "/resolve/" in path}
        assert auth == {f"Bearer {token}"}  # HF_TOKEN, through huggingface_hub
        assert {path.split("/resolve/v2/")[1] for _, path, _, _ in hub.requests} == {"config.json", "model.safetensors", "params.json"}
    assert token not in proc.stdout + proc.stderr
    assert (tmp_path / "out" / "meeting.rttm").is_file()
    repo = cache / "models--org--model"
    assert (repo / "refs" / "v2").read_text() == commit_hash("b")
    snapshot = repo / "snapshots" / commit_hash("b")
    assert (snapshot / "model.safetensors").resolve().parent == (repo / "blobs").resolve()
    # the server is gone: offline, the cache is enough (and its params.json still applies)
    proc = pixit("separate", audio, "--out", tmp_path / "out2", "--model", "org/model@v2", "--device", "cpu",
                 env=hub_env(cache, offline=True))
    assert proc.returncode == 0, proc.stderr


def test_cli_errors_for_hub_ids(audio, tmp_path):
    files = model_files(tmp_path / "m", 1)
    empty = tmp_path / "empty-cache"
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text("hf_stored_login_token")  # what `hf auth login` stores in HF_HOME
    with FakeHub() as hub:
        hub.add("pyannote/separation-ami-1.0", {"pytorch_model.bin": b"x"}, gated=True)
        hub.add("org/model", files)
        online = hub_env(empty, offline=False, endpoint=hub.url, home=home)

        def separate(model, env=online, start=pixit):
            return start("separate", audio, "--out", tmp_path / "out", "--model", model, "--device", "cpu", env=env)

        # huggingface_hub retries a refused connection 5 times (23 s of back-off): run that case alongside
        unreachable = separate("org/model", hub_env(empty, offline=False, endpoint=f"http://127.0.0.1:{closed_port()}"),
                               start=start_pixit)
        one_line_error(separate("pyannote/separation-ami-1.0"), "pyannote/separation-ami-1.0 is a gated repo",
                       f"accept its conditions at {hub.url}/pyannote/separation-ami-1.0", "hf auth login")
        assert {h.get("authorization") for _, p, h, _ in hub.requests if "separation" in p} == {"Bearer hf_stored_login_token"}
        one_line_error(separate("org/unknown"), "no model repo org/unknown", "check the name", "log in")
        one_line_error(separate("org/model@nope"), "org/model has no revision 'nope'")
    one_line_error(separate("org/model", hub_env(empty, offline=True)), "org/model is not in the Hugging Face cache",
                   "HF_HUB_OFFLINE is set", "put its files in the cache")
    line = one_line_error(finish(unreachable), "cannot reach the Hugging Face Hub to fetch org/model", str(empty),
                          "HF_HUB_OFFLINE=1")
    assert "hf_stored_login_token" not in line
    assert not (tmp_path / "out").exists()  # nothing was written


# ------------------------------------------------------------------- SSL front ends and embeddings
def test_ssl_front_end_by_hub_id_from_the_cache(offline_cache, tmp_path):
    """transformers' own from_pretrained reads the hub cache for an SSL hub id (with its feature
    extractor's do_normalize), and a saved ToTaToNet then no longer needs the hub at all."""
    from test_ssl import _save_tiny, small_model_config

    from core.models.ssl import SSLFrontEnd

    folder = _save_tiny("wavlm", tmp_path / "wavlm-base-plus")
    (folder / "preprocessor_config.json").write_text('{"feature_extractor_type": "Wav2Vec2FeatureExtractor", "do_normalize": false}')
    write_hub_cache(offline_cache, "microsoft/wavlm-base-plus", {p.name: p for p in folder.iterdir()})
    by_id = SSLFrontEnd({"name_or_path": "microsoft/wavlm-base-plus"}).eval()
    by_folder = SSLFrontEnd({"name_or_path": str(folder)}).eval()
    assert by_id.config_dict()["normalize"] is False  # read from the repo's preprocessor_config.json
    x = 0.1 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(by_id(x), by_folder(x))
    net = ToTaToNet(small_model_config({"name_or_path": "microsoft/wavlm-base-plus@main"}))
    net.save(tmp_path / "with-ssl")
    import shutil

    shutil.rmtree(offline_cache / "models--microsoft--wavlm-base-plus")  # the hub copy is gone
    assert same_weights(load_model(tmp_path / "with-ssl"), net)


def test_speechbrain_embedding_by_hub_id_from_the_cache(offline_cache, tmp_path):
    """speechbrain's own loader fetches a speechbrain/* repo from the hub cache; other orgs are refused
    (their hyperparams.yaml could run code)."""
    import numpy as np
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    from test_install import HYPERPARAMS

    from core.embeddings import get_encoder
    from core.errors import PixitError

    torch.manual_seed(0)
    net = ECAPA_TDNN(24, channels=[32, 32, 32, 32, 96], kernel_sizes=[5, 3, 3, 3, 1], dilations=[1, 2, 3, 4, 1],
                     attention_channels=16, lin_neurons=24)
    torch.save(net.state_dict(), tmp_path / "embedding_model.ckpt")
    # the real repo's hyperparams.yaml points its pretrainer at the repo itself, as this one does
    files = {"hyperparams.yaml": HYPERPARAMS.format(folder="speechbrain/spkrec-tiny"),
             "embedding_model.ckpt": tmp_path / "embedding_model.ckpt"}
    write_hub_cache(offline_cache, "speechbrain/spkrec-tiny", files)
    encoder = get_encoder("speechbrain/spkrec-tiny", "cpu")
    waves = [np.random.default_rng(i).standard_normal(16000).astype(np.float32) * 0.1 for i in range(2)]
    emb = encoder(waves)
    assert emb.shape == (2, 24) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.allclose(get_encoder("speechbrain-ecapa:speechbrain/spkrec-tiny", "cpu")(waves), emb, atol=1e-6)
    write_hub_cache(offline_cache, "someone/ecapa", files)
    with pytest.raises(PixitError, match="only repos of the speechbrain organisation are loaded by hub id"):
        get_encoder("someone/ecapa", "cpu")
    with pytest.raises(HubError, match="speechbrain/absent is not in the Hugging Face cache"):
        get_encoder("speechbrain/absent", "cpu")


def test_cached_models_lists_what_loads(offline_cache, tmp_path):
    """What the app offers without network: own-format and pyannote ToTaToNet repos of the cache, not the
    other models there (a transformers SSL model, a repo without weights)."""
    from test_ssl import _save_tiny

    from core.models.resolve import cached_models

    write_hub_cache(offline_cache, "org/model", model_files(tmp_path / "m", 1))
    write_hub_cache(offline_cache, "org/model-v2-only", model_files(tmp_path / "m2", 2), ref="v2")
    write_hub_cache(offline_cache, "pyannote/separation-ami-1.0", {"pytorch_model.bin": pyannote_checkpoint(tmp_path / "p.bin")})
    wavlm = _save_tiny("wavlm", tmp_path / "wavlm")
    write_hub_cache(offline_cache, "microsoft/wavlm-base-plus", {p.name: p for p in wavlm.iterdir()})
    torch.save({"state_dict": {}}, tmp_path / "other.bin")
    write_hub_cache(offline_cache, "org/not-totatonet", {"pytorch_model.bin": tmp_path / "other.bin"})
    listed = {m.name: m.kind for m in cached_models()}
    v2 = next(m.name for m in cached_models() if m.repo_id == "org/model-v2-only")
    assert listed == {"org/model": "pixit", v2: "pixit", "pyannote/separation-ami-1.0": "pyannote"}
    assert v2.startswith("org/model-v2-only@") and resolve_model(v2).kind == "pixit"
    with pytest.raises(ModelError, match="holds no model"):
        resolve_model("microsoft/wavlm-base-plus")  # a transformers model is not a ToTaToNet
