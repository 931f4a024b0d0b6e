"""Known speakers (core.speakers): profiles from a corrected meeting name the same people in the next
meeting (library and `pixit separate --speakers`); the profile file round trip and its bad forms."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import synth
from core.annotation import read_rttm_single
from core.data import read_manifest
from core.errors import PixitError
from core.speakers import SpeakerProfiles, build_profiles, label_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not synth.espeak_available(), reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Two meetings of the same three people (each in its own room)."""
    out = tmp_path_factory.mktemp("series")
    return read_manifest(synth.make_corpus(out, 2, 45.0, speakers=(3, 3), seed=7, same_speakers=True,
                                           write_sources=False, acoustics="room"))


@pytest.fixture(scope="module")
def profiles(series, tmp_path_factory):
    from core.embeddings import get_encoder

    found = build_profiles([series[0]], get_encoder("resemblyzer"), "resemblyzer")
    path = tmp_path_factory.mktemp("profiles") / "speakers.json"
    found.save(path)
    return path


def _main_reference(hypothesis, reference, label) -> str:
    """The reference speaker a hypothesis label overlaps most."""
    turns = hypothesis.label_timeline(label)
    return max(reference.labels(), key=lambda ref: reference.label_timeline(ref).crop(turns).duration())


def test_profiles_name_the_same_people_in_the_next_meeting(series, profiles):
    from core.pipeline import Pipeline

    known = SpeakerProfiles.load(profiles)
    assert known.names == ["spk0", "spk1", "spk2"] and min(known.seconds) >= 1.0
    nxt = series[1]
    hyp = Pipeline("default", device="cpu", speakers=known)(str(nxt.audio), uri=nxt.uri, return_sources=False).annotation
    named = [label for label in hyp.labels() if label in known.names]
    assert len(named) >= 2  # the people who speak most in the next meeting are recognised ...
    for label in named:  # ... as who they are (synth keeps spk0..2 for the same voices across the series)
        assert _main_reference(hyp, nxt.annotation, label) == label
    anonymous = Pipeline("default", device="cpu", speakers=None)(str(nxt.audio), uri=nxt.uri, return_sources=False)
    assert all(label.startswith("SPEAKER_") for label in anonymous.labels)


def test_separate_takes_a_profile_file(series, profiles, tmp_path):
    nxt = series[1]
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "core.cli", "separate", str(nxt.audio), "--out", str(tmp_path / "out"),
         "--no-sources", "--overwrite", "--device", "cpu", *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    done = run("--speakers", str(profiles))
    assert done.returncode == 0, done.stderr[-1500:]
    assert "known speakers: spk0, spk1, spk2" in done.stdout
    labels = read_rttm_single(tmp_path / "out" / f"{nxt.uri}.rttm").labels()
    assert set(labels) & {"spk0", "spk1", "spk2"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    refused = run("--speakers", str(bad))
    assert refused.returncode == 2 and "bad.json: not a speaker profile file" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_profile_file_round_trip_and_bad_forms(tmp_path):
    p = SpeakerProfiles("resemblyzer", ["Ann Lee", "Bo"], np.eye(2, 4, dtype=np.float32) * 3, [4.0, 2.5])
    p.save(tmp_path / "s.json")
    back = SpeakerProfiles.load(tmp_path / "s.json")
    assert back.names == ["Ann Lee", "Bo"] and np.allclose(np.linalg.norm(back.vectors, axis=1), 1.0)
    assert label_for("Ann  Lee") == "Ann_Lee"  # one RTTM field
    for text in ("not json", json.dumps({"format": "pixit-speaker-profiles", "speakers": []}),
                 json.dumps({"format": "pixit-speaker-profiles", "speakers": [{"name": "a", "vector": [1, "x"]}]}),
                 json.dumps({"format": "pixit-speaker-profiles",
                             "speakers": [{"name": "a", "vector": [1, 0]}, {"name": "a", "vector": [0, 1]}]})):
        (tmp_path / "b.json").write_text(text)
        with pytest.raises(PixitError, match="b.json: not a speaker profile file"):
            SpeakerProfiles.load(tmp_path / "b.json")
