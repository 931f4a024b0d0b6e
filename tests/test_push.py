"""`pixit push`: the generated model card (from a real fine-tuning run: data, parent, metrics,
licence) and the upload through huggingface_hub's HfApi to `FakeHub` (a local server answering the
Hub's create-repo / validate-yaml / preupload / commit endpoints; the real Hub and its LFS / Xet
transfers are not reachable here). The pushed repo then loads by name, and the token never shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hub_fixtures import FakeHub, hub_env

from core.errors import PixitError
from core.models.sharing import model_card, stage_model

ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory) -> Path:
    """RUN/model of a 2-step fine-tuning of a tiny model (pixit train --init writes the same)."""
    from conftest import pipeline_model_config, write_corpus

    from core.models.totatonet import ToTaToNet
    from core.pipeline import PipelineParams
    from core.training import TrainConfig, train

    base = tmp_path_factory.mktemp("push")
    corpus = write_corpus(base / "corpus", num_meetings=2, duration=8.0, seed=4)
    ToTaToNet(pipeline_model_config()).save(base / "parent")
    PipelineParams(threshold=0.45).save(base / "parent" / "params.json", extra={"metrics": {"der": 0.25}})
    result = train(corpus, base / "run", init=base / "parent", config=TrainConfig(
        max_steps=2, val_every=2, seed=1, batch_size=2, chunk_duration=1.0, val_pairs=4, accelerator="cpu", devices=1))
    return Path(result.model_dir)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_model_card_says_data_parent_metrics_and_licence(fine_tuned):
    card = model_card(fine_tuned, license="cc-by-4.0", notes=["fine-tuned on corrected meetings"])
    meta = front_matter(card)
    assert meta["license"] == "cc-by-4.0" and "speaker-diarization" in meta["tags"] and "base_model" not in meta
    assert "parent model: a local model (parent)" in card  # a local parent by its folder name, never its path
    assert "2 training recording(s) (meeting000.wav, meeting001.wav)" in card
    assert str(fine_tuned.parent.parent) not in card  # file names only, never local folders
    assert "| 2 |" in card and "DER" in card  # the best validation row of metrics.csv
    assert "Pipeline DER with the tuned parameters of `params.json` on the tuning set: 25.0 %" in card
    assert "fine-tuned on corrected meetings" in card and "parameters" in card
    hub_parent = front_matter(model_card(fine_tuned, parent="org/parent-model"))
    assert hub_parent["base_model"] == "org/parent-model"  # a hub parent is linked as the base model


def test_stage_refuses_bad_repo_ids_and_full_folders(fine_tuned, tmp_path):
    with pytest.raises(PixitError, match="not a Hugging Face repo id"):
        stage_model(fine_tuned, tmp_path / "a", "not a repo")
    with pytest.raises(PixitError, match="not a Hugging Face repo id"):
        stage_model(fine_tuned, tmp_path / "a", "org/name@v1")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(PixitError, match="is not empty"):
        stage_model(fine_tuned, tmp_path / "full", "org/name")
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_cli_push_uploads_and_the_repo_loads_by_name(fine_tuned, tmp_path):
    token = "hf_push_secret_token_456"
    base = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}

    def pixit(*args, env):
        return subprocess.run([sys.executable, "-m", "core.cli", *map(str, args)], capture_output=True, text=True,
                              cwd=ROOT, env={**env, **base}, timeout=600)

    with FakeHub() as hub:
        online = hub_env(tmp_path / "cache", offline=False, endpoint=hub.url, token=token)
        proc = pixit("push", fine_tuned, "org/my-model", "--private", "--license", "mit", "--with-pyannote", env=online)
        assert proc.returncode == 2 and "cannot export for pyannote.audio" in proc.stderr  # the tiny head is 16 wide
        assert "org/my-model" not in hub.repos  # nothing was created
        proc = pixit("push", fine_tuned, "org/my-model", "--private", "--license", "mit", env=online)
        assert proc.returncode == 0, proc.stderr
        assert f"{hub.url}/org/my-model/commit/" in proc.stdout
        repo = hub.repos["org/my-model"]
        assert repo.private and sorted(repo.files) == ["README.md", "config.json", "model.safetensors", "params.json"]
        assert front_matter(repo.files["README.md"].decode())["license"] == "mit"
        assert repo.files["model.safetensors"] == (fine_tuned / "model.safetensors").read_bytes()
        assert {h.get("authorization") for _, _, h, _ in hub.requests} == {f"Bearer {token}"}
        assert token not in proc.stdout + proc.stderr
        # the pushed repo by name, as anyone with access would use it
        proc = pixit("export", "org/my-model", tmp_path / "copy", "--format", "pixit", env=online)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "copy" / "model.safetensors").read_bytes() == repo.files["model.safetensors"]

        no_login = hub_env(tmp_path / "cache", offline=False, endpoint=hub.url, home=tmp_path / "nobody")
        proc = pixit("push", fine_tuned, "org/other", env=no_login)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "did not accept your credentials for org/other" in proc.stderr and "hf auth login" in proc.stderr
    offline = pixit("push", fine_tuned, "org/my-model", env=hub_env(tmp_path / "cache", offline=True, token=token))
    assert offline.returncode == 2 and "HF_HUB_OFFLINE is set (pushing needs the network)" in offline.stderr
