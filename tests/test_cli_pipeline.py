"""`pixit separate / evaluate / tune / bench` through real subprocesses: outputs, resume, one-line
errors with exit status 2 and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}


def pixit(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=ENV, timeout=300)


def pixit_inprocess(capsys, *args) -> subprocess.CompletedProcess:
    """The same dispatcher in this process (no interpreter start-up): for the many error cases."""
    from core.cli import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from conftest import write_corpus

    return write_corpus(tmp_path_factory.mktemp("cli"), num_meetings=2, duration=8.0, seed=7)


def test_separate_writes_outputs_and_resumes(corpus, tiny_model_dir, tmp_path):
    folder = corpus.parent
    listing = tmp_path / "list.txt"
    listing.write_text("# the two meetings\n" + "".join(f"{p}\n" for p in sorted(folder.glob("*.wav"))))
    out = tmp_path / "out"
    proc = pixit("separate", listing, "--out", out, "--model", tiny_model_dir, "--device", "cpu", "--batch-size", "8", "--embedding", "mfcc")
    assert proc.returncode == 0, proc.stderr
    uris = sorted(p.stem for p in folder.glob("*.wav"))
    assert "[2/2]" in proc.stdout and "done: 2 of 2" in proc.stdout
    for uri in uris:
        summary = json.loads((out / f"{uri}.json").read_text())
        assert summary["uri"] == uri and summary["duration"] == pytest.approx(8.0)
        assert (out / f"{uri}.rttm").is_file()
        for speaker in summary["speakers"]:
            assert (out / speaker["wav"]).is_file()
    stamp = (out / f"{uris[0]}.json").stat().st_mtime_ns
    # a second run (folder input this time) skips both recordings
    proc = pixit("separate", folder, "--out", out, "--model", tiny_model_dir, "--device", "cpu", "--embedding", "mfcc")
    assert proc.returncode == 0, proc.stderr
    assert "skipping 2 of 2" in proc.stdout
    assert (out / f"{uris[0]}.json").stat().st_mtime_ns == stamp


def test_separate_user_errors(corpus, tiny_model_dir, tmp_path, capsys):
    wav = next(corpus.parent.glob("*.wav"))
    assert_user_error(pixit("separate", tmp_path / "missing.wav", "--out", tmp_path), "missing.wav")  # real process
    run = lambda *a: pixit_inprocess(capsys, *a)  # noqa: E731
    assert_user_error(run("separate", wav, "--out", tmp_path, "--num-speakers", "2", "--min-speakers", "1"), "--num-speakers")
    assert_user_error(run("separate", wav, "--out", tmp_path, "--min-speakers", "3", "--max-speakers", "2"), "min_speakers")
    assert_user_error(run("separate", wav, "--out", tmp_path, "--model", tmp_path / "nomodel"), "nomodel")
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    assert_user_error(run("separate", tmp_path / "bad.wav", "--out", tmp_path / "o", "--model", tiny_model_dir, "--device", "cpu",
                          "--embedding", "mfcc"), "bad.wav")
    (tmp_path / "p.json").write_text('{"threshold": 2}')
    assert_user_error(run("separate", wav, "--out", tmp_path, "--model", tiny_model_dir, "--params", tmp_path / "p.json"), "threshold")
    assert_user_error(run("separate", wav, "--out", tmp_path, "--model", tiny_model_dir, "--embedding", "nope"), "nope")


def test_evaluate_table_json_and_errors(tmp_path, capsys):
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    ref.mkdir(), hyp.mkdir()
    (ref / "a.rttm").write_text("SPEAKER a 1 0.0 10.0 <NA> <NA> A <NA> <NA>\nSPEAKER a 1 5.0 10.0 <NA> <NA> B <NA> <NA>\n")
    (hyp / "a.rttm").write_text("SPEAKER a 1 0.0 8.0 <NA> <NA> X <NA> <NA>\nSPEAKER a 1 8.0 4.0 <NA> <NA> Y <NA> <NA>\n"
                                "SPEAKER a 1 12.0 3.0 <NA> <NA> X <NA> <NA>\nSPEAKER a 1 16.0 1.0 <NA> <NA> Z <NA> <NA>\n")
    (ref / "b.rttm").write_text("SPEAKER b 1 0.0 4.0 <NA> <NA> A <NA> <NA>\n")
    proc = pixit("evaluate", "--reference", ref, "--hypothesis", hyp)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    row_a = next(line for line in lines if line.startswith("a "))
    assert "45.00" in row_a  # hand computation in test_metrics: 9 s of errors / 20 s
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert "54.17" in total  # (9 + 4 missed in b) / (20 + 4)
    assert "no hypothesis for 1" in proc.stderr
    run = lambda *a: pixit_inprocess(capsys, *a)  # noqa: E731
    proc = run("evaluate", "--reference", ref / "a.rttm", "--hypothesis", hyp / "a.rttm", "--json", "--collar", "0.5")
    report = json.loads(proc.stdout)
    assert report["total"]["der"] == pytest.approx(7.5 / 16)
    assert_user_error(run("evaluate", "--reference", tmp_path / "nope", "--hypothesis", hyp), "nope")
    (tmp_path / "broken.rttm").write_text("SPEAKER a 1 zero 1.0 <NA> <NA> A <NA> <NA>\n")
    assert_user_error(run("evaluate", "--reference", tmp_path / "broken.rttm", "--hypothesis", hyp), "broken.rttm")
    assert_user_error(run("evaluate", "--reference", ref, "--hypothesis", hyp, "--collar", "-1"), "collar")


def test_tune_cli(corpus, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "params.json"
    proc = pixit_inprocess(capsys, "tune", "--dev", corpus, "--model", tiny_model_dir, "--out", out, "--device", "cpu", "--embedding", "mfcc",
                 "--thresholds", "0.5", "--clustering-thresholds", "0.6,1.0", "--collars", "0,0.5", "--batch-size", "8")
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "DER" in proc.stdout
    from core.pipeline import PipelineParams

    params = PipelineParams.load(out)
    assert params.embedding == "mfcc" and params.clustering_threshold in (0.6, 1.0)
    run = lambda *a: pixit_inprocess(capsys, *a)  # noqa: E731
    assert_user_error(run("tune", "--dev", corpus, "--model", tiny_model_dir, "--out", out, "--thresholds", "0.5,abc"), "--thresholds")
    assert_user_error(run("tune", "--dev", tmp_path / "none.csv", "--model", tiny_model_dir, "--out", out, "--device", "cpu"), "none.csv")
    stepped = run("tune", "--dev", corpus, "--model", tiny_model_dir, "--out", out, "--device", "cpu", "--embedding", "mfcc",
                  "--thresholds", "0.5", "--clustering-thresholds", "0.6", "--collars", "0", "--steps", "2", "--max-der-increase", "100")
    assert stepped.returncode == 0, stepped.stderr
    assert "sliding step 2 s kept" in stepped.stdout and PipelineParams.load(out).step == 2.0
    assert_user_error(run("tune", "--dev", corpus, "--model", tiny_model_dir, "--out", out, "--steps", "0"), "--steps")
    assert_user_error(run("tune", "--dev", corpus, "--model", tiny_model_dir, "--out", out, "--device", "cpu", "--steps", "9"), "window")


def test_bench_cli(tiny_model_dir, tmp_path, capsys):
    proc = pixit_inprocess(capsys, "bench", "--duration", "6", "--model", tiny_model_dir, "--device", "cpu", "--embedding", "mfcc", "--json", tmp_path / "b.json")
    assert proc.returncode == 0, proc.stderr
    assert "RTF" in proc.stdout and "peak RSS" in proc.stdout and "pyannote.audio" in proc.stdout
    rows = json.loads((tmp_path / "b.json").read_text())
    assert rows[0]["duration"] == 6.0 and rows[0]["peak_rss_mb"] > 0
    assert "above the baseline" in proc.stdout and rows[0]["baseline_mb"] > 100  # torch alone is more
    assert abs(rows[0]["peak_rss_mb"] - rows[0]["baseline_mb"] - rows[0]["above_baseline_mb"]) < 1e-6
    assert_user_error(pixit_inprocess(capsys, "bench", "--duration", "5", "--model", tmp_path / "nomodel"), "nomodel")
