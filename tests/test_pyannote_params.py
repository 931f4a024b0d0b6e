"""`--params` by name: pyannote.audio pipeline config.yaml files (local or by hub id, read from an
on-disk hub cache with HF_HUB_OFFLINE=1) mapped onto PipelineParams, with a note for every setting
that has no counterpart; this project's params.json by hub id too.

The config below has the layout pyannote.audio's `Pipeline.from_pretrained` reads (pipeline.name,
pipeline.params for the constructor, params for the hyper-parameters); the values of the real
pyannote/speech-separation-ami-1.0 (gated) could not be read here, so these are made up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hub_fixtures import hub_env, write_hub_cache

from core.errors import PixitError
from core.pipeline import PipelineParams
from core.pyannote_params import load_params, params_from_pyannote

ROOT = Path(__file__).resolve().parent.parent
SEPARATION = {
    "version": "3.3.0",
    "pipeline": {"name": "pyannote.audio.pipelines.SpeechSeparation",
                 "params": {"segmentation": "pyannote/separation-ami-1.0", "segmentation_step": 0.1,
                            "segmentation_batch_size": 16, "embedding": "pyannote/wespeaker-voxceleb-resnet34-LM",
                            "embedding_batch_size": 32, "embedding_exclude_overlap": True,
                            "clustering": "AgglomerativeClustering"}},
    "params": {"segmentation": {"threshold": 0.82, "min_duration_off": 0.05},
               "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.7045},
               "separation": {"leakage_removal": True, "asr_collar": 0.32}},
}


def test_pyannote_separation_config_maps_onto_pipeline_params():
    params, notes = params_from_pyannote(SEPARATION)
    assert (params.threshold, params.min_duration_off) == (0.82, 0.05)
    assert (params.clustering_method, params.clustering_threshold, params.min_cluster_size) == ("centroid", 0.7045, 12)
    assert params.leakage_collar == 0.32 and params.step == pytest.approx(0.5) and params.batch_size == 16
    assert params.embedding == PipelineParams().embedding  # wespeaker has no counterpart here
    text = "\n".join(notes)
    assert "runs the model pyannote/separation-ami-1.0: name it with --model" in text
    assert "embedding pyannote/wespeaker-voxceleb-resnet34-LM has no counterpart" in text
    assert "embedding_batch_size has no counterpart" in text
    assert len(notes) == 3, notes  # exclude_overlap true, agglomerative, leakage removal on: all have counterparts

    other = json.loads(json.dumps(SEPARATION))
    other["pipeline"]["params"].update(embedding="speechbrain/spkrec-ecapa-voxceleb@5c0be38", embedding_exclude_overlap=False,
                                       clustering="OracleClustering")
    other["params"]["separation"]["leakage_removal"] = False
    other["params"]["clustering"]["bogus"] = 1
    params, notes = params_from_pyannote(other)
    assert params.embedding == "speechbrain/spkrec-ecapa-voxceleb@5c0be38"  # the same ECAPA, by hub id
    text = "\n".join(notes)
    for said in ("embedding_exclude_overlap false has no counterpart", "clustering OracleClustering has no counterpart",
                 "leakage_removal false has no counterpart", "clustering.bogus has no counterpart"):
        assert said in text, text


def test_config_errors():
    with pytest.raises(PixitError, match="not a pyannote.audio pipeline configuration"):
        params_from_pyannote({"params": {}})
    with pytest.raises(PixitError, match="pyannote pipeline pyannote.audio.pipelines.VoiceActivityDetection is not one of"):
        params_from_pyannote({"pipeline": {"name": "pyannote.audio.pipelines.VoiceActivityDetection"}})
    diarization = {"pipeline": {"name": "pyannote.audio.pipelines.SpeakerDiarization", "params": {}},
                   "params": {"segmentation": {"threshold": 1.5}}}
    with pytest.raises(PixitError, match="threshold must be in"):
        params_from_pyannote(diarization)


def test_params_by_file_folder_and_hub_id(tmp_path, monkeypatch):
    from huggingface_hub import constants

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(SEPARATION))
    assert load_params(tmp_path / "config.yaml")[0].threshold == 0.82
    assert load_params(tmp_path)[0].threshold == 0.82  # a folder holding it, as pyannote takes it
    PipelineParams(threshold=0.3).save(tmp_path / "tuned.json")
    assert load_params(tmp_path / "tuned.json") == (PipelineParams(threshold=0.3), [])

    cache = tmp_path / "cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    write_hub_cache(cache, "pyannote/speech-separation-ami-1.0", {"config.yaml": yaml.safe_dump(SEPARATION), "README.md": "x"})
    params, notes = load_params("pyannote/speech-separation-ami-1.0")
    assert params.clustering_threshold == 0.7045 and notes
    write_hub_cache(cache, "org/tuned", {"params.json": (tmp_path / "tuned.json").read_text()})
    assert load_params("org/tuned@main")[0].threshold == 0.3
    write_hub_cache(cache, "org/empty", {"README.md": "x"})
    with pytest.raises(PixitError, match="holds neither params.json nor a pyannote config.yaml"):
        load_params("org/empty")
    with pytest.raises(PixitError, match="org/absent is not in the Hugging Face cache"):
        load_params("org/absent")
    with pytest.raises(PixitError, match="no such parameter file, folder or hub id"):
        load_params(tmp_path / "missing.json")


def test_cli_separate_with_pyannote_pipeline_settings(tmp_path, tiny_model_dir):
    from conftest import write_meeting

    audio = write_meeting(tmp_path, "meeting", duration=6.0, num_speakers=2, seed=3)["audio"]
    cache = tmp_path / "cache"
    config = json.loads(json.dumps(SEPARATION))
    config["pipeline"]["params"]["segmentation_step"] = 0.2  # 1 s steps: fast
    write_hub_cache(cache, "pyannote/speech-separation-ami-1.0", {"config.yaml": yaml.safe_dump(config)})
    env = {**hub_env(cache, offline=True), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "core.cli", "separate", audio, "--out", tmp_path / "out",
                           "--model", tiny_model_dir, "--params", "pyannote/speech-separation-ami-1.0",
                           "--embedding", "mfcc", "--device", "cpu"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pixit separate: note: embedding pyannote/wespeaker-voxceleb-resnet34-LM has no counterpart" in proc.stderr
    used = json.loads((tmp_path / "out" / "meeting.json").read_text())["params"]
    assert (used["threshold"], used["clustering_threshold"], used["leakage_collar"], used["step"]) == (0.82, 0.7045, 0.32, 1.0)
