"""The command line never reports success on wrong data (issue 18), through real `pixit` processes:
file names with spaces, NaN / silent training audio, a loss that turns NaN, RTTMs without speaker
turns, NaN / infinite / out-of-range numbers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from test_cli_pipeline import assert_user_error, pixit

from conftest import write_meeting


# ------------------------------------------------------------------------ 1. one-field RTTM uris
def test_names_with_spaces_get_a_one_field_uri(tiny_model_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    paths = write_meeting(folder, "m", duration=6.0, num_speakers=2, seed=3)
    audio = folder / "team meeting\u00a0ünïcode 会议.wav"
    paths["audio"].rename(audio)
    out = tmp_path / "out"
    proc = pixit("separate", audio, "--out", out, "--model", tiny_model_dir, "--device", "cpu", "--embedding", "mfcc",
                 "--num-speakers", "2")
    assert proc.returncode == 0, proc.stderr
    uri = "team_meeting_ünïcode_会议"  # each run of whitespace -> "_", the rest kept
    summary = json.loads((out / f"{uri}.json").read_text(encoding="utf-8"))
    assert summary["uri"] == uri and summary["file"] == audio.name
    rttm = (out / f"{uri}.rttm").read_text(encoding="utf-8")
    assert rttm and all(line.split()[1] == uri and len(line.split()) == 10 for line in rttm.splitlines())
    # it reads back as written: evaluate scores exactly the speech of the recording against itself
    proc = pixit("evaluate", "--reference", out / f"{uri}.rttm", "--hypothesis", out / f"{uri}.rttm", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["files"][0]["uri"] == uri and report["total"]["der"] == 0.0
    assert report["total"]["total"] == pytest.approx(sum(s["speech"] for s in summary["speakers"]), abs=0.01)
    assert report["total"]["total"] <= 6.0
    # two names that map to one uri are refused before anything is written
    shutil.copy(audio, folder / "team_meeting_ünïcode_会议.wav")
    assert_user_error(pixit("separate", folder, "--out", tmp_path / "o2"), "same outputs")
    assert not (tmp_path / "o2").exists()


def test_rttm_writer_refuses_lines_that_would_not_read_back(tmp_path):
    from pyannote.core import Annotation, Segment

    from core.annotation import read_rttm, uri_for, write_rttm
    from core.errors import AnnotationError

    ann = Annotation(uri="a b")
    ann[Segment(0, 1)] = "Alice Smith"
    target = tmp_path / "x.rttm"
    for uri, label, word in (("a b", "A", "recording name"), ("ab", "Alice Smith", "speaker label"), ("ab", "", "speaker")):
        bad = Annotation(uri=uri)
        bad[Segment(0, 1)] = label
        with pytest.raises(AnnotationError, match=word):
            write_rttm(bad, target)
        assert not target.exists()
    good = Annotation(uri=uri_for("a b"))
    good[Segment(0.5, 1.25)] = "A"
    write_rttm(good, target)
    assert read_rttm(target)["a_b"].get_timeline()[0] == Segment(0.5, 1.25)
    tiny = Annotation(uri="t")
    tiny[Segment(1.0, 1.0002)] = "A"  # rounds to a zero duration, which no reader accepts
    with pytest.raises(AnnotationError, match="1 ms"):
        write_rttm(tiny, target)


# -------------------------------------------------- 2. training audio and losses that are not numbers
TRAIN_FAST = ("--max-steps", "4", "--batch-size", "2", "--chunk-duration", "1", "--val-pairs", "2", "--accelerator", "cpu")


@pytest.fixture(scope="module")
def two_meetings(tmp_path_factory):
    from conftest import write_corpus

    return write_corpus(tmp_path_factory.mktemp("train"), num_meetings=2, duration=6.0, seed=5)


def _copy_corpus(manifest, folder):
    shutil.copytree(manifest.parent, folder)
    return folder / manifest.name


def test_nan_silent_or_unreadable_training_audio_is_refused_before_training(two_meetings, tiny_model_dir, tmp_path):
    for case, what in (("nan", "NaN"), ("inf", "NaN or infinite"), ("silent", "silent"), ("garbage", "cannot read audio")):
        manifest = _copy_corpus(two_meetings, tmp_path / case)
        wav = manifest.parent / "meeting001.wav"
        data, sr = sf.read(wav, dtype="float32")
        if case == "garbage":
            wav.write_bytes(b"RIFF not really a wave file")
        else:
            data[sr // 2] = {"nan": np.nan, "inf": np.inf}.get(case, data[sr // 2])
            sf.write(wav, data * (0 if case == "silent" else 1), sr, subtype="FLOAT")
        dev = ("--dev", manifest) if case == "silent" else ()  # the dev set is checked as well
        train_on = two_meetings if case == "silent" else manifest
        run = tmp_path / f"run-{case}"
        proc = pixit("train", "--train", train_on, *dev, "--out", run, "--init", tiny_model_dir, *TRAIN_FAST)
        assert_user_error(proc, "meeting001.wav", what)
        assert not run.exists()  # refused before anything was written


def test_a_loss_that_turns_nan_stops_training_with_exit_1(two_meetings, tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = load_file(broken / "model.safetensors")
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
    weights[name][...] = float("nan")  # a diverged model: every loss is NaN
    save_file(weights, broken / "model.safetensors")
    run = tmp_path / "run"
    proc = pixit("train", "--train", two_meetings, "--out", run, "--init", broken, *TRAIN_FAST)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("pixit train: failed:") and "NaN" in last and "no model was written" in last
    assert "model:" not in proc.stdout and not (run / "model").exists()
    state = json.loads((run / "train.json").read_text())
    assert state["status"] == "failed" and "NaN" in state["error"]


# ------------------------------------------------------- 3. an RTTM without speaker turns in a manifest
def test_manifest_rttm_without_speaker_lines_is_an_error_unless_empty(two_meetings, tiny_model_dir, tmp_path):
    manifest = _copy_corpus(two_meetings, tmp_path / "c")
    rttm = manifest.parent / "meeting001.rttm"
    rttm.write_text("root:x:0:0:root:/root:/bin/bash\nSPKR-INFO meeting001 1 <NA> <NA> <NA> unknown A <NA> <NA>\n")
    assert_user_error(pixit("train", "--train", manifest, "--out", tmp_path / "run", *TRAIN_FAST),
                      "meeting001.rttm", "no SPEAKER line")
    assert_user_error(pixit("tune", "--dev", manifest, "--model", tiny_model_dir, "--out", tmp_path / "p.json"),
                      "meeting001.rttm", "no SPEAKER line")
    assert not (tmp_path / "run").exists() and not (tmp_path / "p.json").exists()
    rttm.write_text("; this recording has no speech\n\n")  # empty (comments only): speech-free, accepted
    proc = pixit("tune", "--dev", manifest, "--model", tiny_model_dir, "--out", tmp_path / "p.json", "--device", "cpu",
                 "--embedding", "mfcc", "--thresholds", "0.5", "--clustering-thresholds", "0.6", "--collars", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p.json").is_file()


# ------------------------------------------------------------- 6. tuning keeps bounded source caches
def test_tune_recomputes_sources_past_the_cache_budget(two_meetings, tiny_model_dir, tmp_path):
    """With no source cache (budget 0 minutes) tune recomputes the separated sources when it tunes
    the leakage collar, and finds the same scores as with every source cached."""
    scores = []
    for minutes in (0, 20):
        params = tmp_path / f"start{minutes}.json"
        params.write_text(json.dumps({"source_cache_minutes": minutes, "embedding": "mfcc", "batch_size": 8}))
        out = tmp_path / f"tuned{minutes}.json"
        proc = pixit("tune", "--dev", two_meetings, "--model", tiny_model_dir, "--out", out, "--device", "cpu",
                     "--params", params, "--thresholds", "0.5", "--clustering-thresholds", "0.6", "--collars", "0,0.5,2")
        assert proc.returncode == 0, proc.stderr
        scores.append(json.loads(out.read_text())["metrics"]["collar_scores"])
    assert scores[0].keys() == scores[1].keys() and len(scores[0]) == 3
    for c in scores[0]:
        assert scores[0][c] == pytest.approx(scores[1][c], abs=0.05)  # float16 cache vs float32 recomputed
