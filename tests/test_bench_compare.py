"""`pixit bench --compare pyannote`: pyannote.audio's SpeechSeparation beside `pixit separate` on the
same weights, embedding and parameters, through the real command line (pyannote in .venv-pyannote)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.commands.bench_pyannote import pyannote_settings
from core.models.pyannote_export import pyannote_python
from core.pipeline import PipelineParams
from core.pyannote_params import params_from_pyannote

ROOT = Path(__file__).resolve().parent.parent


def bench(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.cli", "bench", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore", **env}, timeout=600)


def test_settings_map_back_to_the_same_parameters():
    """What the comparison gives pyannote reads back, through the --params mapping, as the same settings."""
    params = PipelineParams(step=1.0, threshold=0.42, clustering_threshold=0.55, leakage_collar=0.3,
                            min_duration_off=0.2, batch_size=8, clustering_method="average", min_cluster_size=2)
    settings, notes = pyannote_settings(params)
    init = {k: v for k, v in settings["init"].items() if k != "embedding_batch_size"}
    config = {"pipeline": {"name": "pyannote.audio.pipelines.SpeechSeparation", "params": init},
              "params": settings["params"]}
    back, back_notes = params_from_pyannote(config)
    assert back.to_dict() == params.to_dict()
    assert back_notes == [] and notes == []
    assert pyannote_settings(PipelineParams(min_duration_on=0.1))[1] == [
        "min_duration_on 0.1 s has no counterpart in pyannote (its turns are kept)"]


@pytest.mark.skipif(pyannote_python() is None, reason="no pyannote.audio environment (.venv-pyannote)")
def test_compare_runs_both_pipelines(tmp_path):
    """Both run up to --pyannote-up-to; beyond it pyannote's figures are a straight line through its runs."""
    proc = bench("--compare", "pyannote", "--duration", "6", "12", "20", "--pyannote-up-to", "12",
                 "--json", tmp_path / "cmp.json")
    assert proc.returncode == 0, proc.stderr
    assert "pyannote / pixit: wall" in proc.stdout and "not run: extrapolated from 0.1, 0.2 min" in proc.stdout
    short, row, long = json.loads((tmp_path / "cmp.json").read_text())
    for name in ("pixit", "pyannote"):
        assert row[name]["cpu_s"] > 0 and row[name]["peak_rss_mb"] > 100
        assert 0 <= row[name]["der"] <= 1.5
    # same weights, embedding and parameters: the two pipelines agree closely on who speaks when
    assert abs(row["pixit"]["der"] - row["pyannote"]["der"]) < 0.1
    assert row["ratio"]["cpu_s"] == pytest.approx(row["pyannote"]["cpu_s"] / row["pixit"]["cpu_s"])
    assert long["pixit"]["cpu_s"] > 0 and long["pyannote"]["der"] is None
    assert long["pyannote"]["extrapolated_from"] == [6.0, 12.0]
    slope = (row["pyannote"]["cpu_s"] - short["pyannote"]["cpu_s"]) / 6
    assert long["pyannote"]["cpu_s"] == pytest.approx(row["pyannote"]["cpu_s"] + 8 * slope)
    assert long["ratio"]["cpu_s"] == pytest.approx(long["pyannote"]["cpu_s"] / long["pixit"]["cpu_s"])


def test_compare_without_pyannote_environment_is_one_line(tmp_path):
    proc = bench("--compare", "pyannote", "--duration", "5", PIXIT_PYANNOTE_PYTHON=str(tmp_path / "none"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and ".venv-pyannote" in proc.stderr
    # extrapolating needs two pyannote runs: refused before anything runs
    proc = bench("--compare", "pyannote", "--duration", "600", "3600", "--pyannote-up-to", "1200")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "at least two" in proc.stderr
