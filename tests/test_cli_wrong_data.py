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
