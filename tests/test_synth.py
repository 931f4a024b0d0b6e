"""Synthetic meetings (core/synth/, `pixit synth`): ground truth is exact and reproducible."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core import synth
from core.annotation import read_rttm_single, read_uem_single
from core.errors import Cancelled, PixitError

pytestmark = pytest.mark.skipif(not synth.espeak_available(), reason="espeak-ng is not installed")

ROOT = Path(__file__).resolve().parents[1]
PIXIT = ROOT / ".venv" / "bin" / "pixit"
SR = 16000


def _read(path: Path) -> np.ndarray:
    data, sr = sf.read(str(path), dtype="float32")
    assert sr == SR and data.ndim == 1
    return data


def _rows(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="") as handle:
        return list(csv.DictReader(handle))


def _rttm_mask(path: Path, label: str, num_frames: int, hop: int = synth.VAD_FRAME) -> np.ndarray:
    annotation = read_rttm_single(path)
    mask = np.zeros(num_frames, dtype=bool)
    for seg, _, lab in annotation.itertracks(yield_label=True):
        if lab == label:
            mask[int(round(seg.start * SR / hop)):int(round(seg.end * SR / hop))] = True
    return mask


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth-cache")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, cache) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    return synth.make_corpus(out, 3, 25.0, speakers=(2, 3), seed=11, cache_dir=cache)


@pytest.fixture(scope="module")
def dry_corpus(tmp_path_factory, cache) -> Path:
    out = tmp_path_factory.mktemp("dry")
    return synth.make_corpus(out, 2, 20.0, speakers=(2, 3), seed=4, reverb=False, noise=False, cache_dir=cache)


def test_manifest_layout_and_relative_paths(corpus):
    root = corpus.parent
    assert corpus.read_text().splitlines()[0] == "audio,rttm,uem,sources"
    rows = _rows(corpus)
    assert len(rows) == 3
    for row in rows:
        for key in ("audio", "rttm", "uem", "sources"):
            assert not Path(row[key]).is_absolute()
            assert (root / row[key]).exists(), row[key]
        uri = Path(row["audio"]).stem
        assert row == {"audio": f"{uri}.wav", "rttm": f"{uri}.rttm", "uem": f"{uri}.uem",
                       "sources": f"sources/{uri}"}
        labels = sorted(p.stem for p in (root / row["sources"]).glob("*.wav"))
        assert 2 <= len(labels) <= 3
        assert labels == [f"spk{k}" for k in range(len(labels))]
        # RTTM labels are exactly the source labels, UEM is the whole recording
        annotation = read_rttm_single(root / row["rttm"], uri=uri)
        assert sorted(annotation.labels()) == labels
        uem = read_uem_single(root / row["uem"], uri=uri)
        duration = len(_read(root / row["audio"])) / SR
        assert duration == pytest.approx(25.0, abs=1e-3)
        assert len(uem) == 1 and uem[0].start == 0.0 and uem[0].end == pytest.approx(duration, abs=1e-3)
        assert annotation.get_timeline().extent().end <= duration + 1e-3
        meta = json.loads((root / "meta" / f"{uri}.json").read_text())
        voices = [v["voice_name"] for v in meta["speakers"].values()]
        assert len(set(voices)) == len(voices), "each meeting picks distinct voices"


def test_mixture_is_sum_of_sources_plus_noise(corpus):
    root = corpus.parent
    for row in _rows(corpus):
        mixture = _read(root / row["audio"])
        sources = [_read(p) for p in sorted((root / row["sources"]).glob("*.wav"))]
        noise = _read(root / "noise" / row["audio"])
        assert all(len(s) == len(mixture) for s in sources) and len(noise) == len(mixture)
        total = np.sum(sources, axis=0, dtype=np.float64) + noise
        np.testing.assert_allclose(mixture, total, atol=1e-5)
        assert np.max(np.abs(mixture)) <= 1.0
        # noise is low-level but present: SNR between 10 and 35 dB
        speech_power = np.mean(np.sum(sources, axis=0, dtype=np.float64) ** 2)
        snr = 10 * np.log10(speech_power / np.mean(noise.astype(np.float64) ** 2))
        assert 10 < snr < 35, snr
        # every speaker actually speaks
        assert all(np.sqrt(np.mean(s ** 2)) > 1e-3 for s in sources)


def test_rttm_matches_dry_speech_activity(dry_corpus):
    """Without reverb and noise, the RTTM is the energy-VAD activity of each source (> 95 %)."""
    root = dry_corpus.parent
    for row in _rows(dry_corpus):
        noise = _read(root / "noise" / row["audio"])
        assert np.all(noise == 0)
        for path in sorted((root / row["sources"]).glob("*.wav")):
            source = _read(path)
            vad = np.zeros(len(source) // synth.VAD_FRAME + 1, dtype=bool)
            for start, end in synth.activity_segments(source):
                vad[int(round(start * SR / synth.VAD_FRAME)):int(round(end * SR / synth.VAD_FRAME))] = True
            rttm = _rttm_mask(root / row["rttm"], path.stem, len(vad))
            agreement = float(np.mean(vad == rttm))
            assert agreement > 0.95, (path, agreement)
            assert rttm.mean() > 0.05


def test_rttm_matches_reverberant_sources(corpus):
    """With reverb: energy inside a speaker's RTTM segments is far above the energy outside."""
    root = corpus.parent
    for row in _rows(corpus):
        for path in sorted((root / row["sources"]).glob("*.wav")):
            source = _read(path).astype(np.float64)
            frames = source[: len(source) // synth.VAD_FRAME * synth.VAD_FRAME].reshape(-1, synth.VAD_FRAME)
            energy = (frames ** 2).mean(axis=1)
            inside = _rttm_mask(root / row["rttm"], path.stem, len(energy))
            assert inside.any() and (~inside).any()
            ratio_db = 10 * np.log10(energy[inside].mean() / max(energy[~inside].mean(), 1e-20))
            assert ratio_db > 10, (path, ratio_db)
            # away from the reverberation tails (0.7 s after a segment), outside is silence
            far = ~inside
            for shift in range(1, 71):
                far[shift:] &= ~inside[:-shift]
            for shift in (1, 2):  # onsets are cut on a 10 ms grid of their own
                far[:-shift] &= ~inside[shift:]
            if far.any():
                assert 10 * np.log10(energy[inside].mean() / max(energy[far].mean(), 1e-20)) > 40


def test_same_seed_identical_files_and_other_seed_differs(tmp_path, cache, corpus):
    first = synth.make_corpus(tmp_path / "a", 3, 25.0, speakers=(2, 3), seed=11, cache_dir=cache)
    root, other = corpus.parent, first.parent
    for row in _rows(corpus):
        # (float WAV headers carry a libsndfile PEAK-chunk timestamp: compare samples, not bytes)
        for key in ("rttm", "uem"):
            assert (root / row[key]).read_bytes() == (other / row[key]).read_bytes()
        assert np.array_equal(_read(root / row["audio"]), _read(other / row["audio"]))
        assert np.array_equal(_read(root / "noise" / row["audio"]), _read(other / "noise" / row["audio"]))
        for path in (root / row["sources"]).glob("*.wav"):
            assert np.array_equal(_read(path), _read(other / row["sources"] / path.name))
    assert corpus.read_bytes() == first.read_bytes()
    # no cache: identical audio too (the cache changes nothing but speed)
    nocache = synth.make_corpus(tmp_path / "n", 1, 25.0, speakers=(2, 3), seed=11, cache_dir=None)
    assert np.array_equal(_read(nocache.parent / "meeting000.wav"), _read(root / "meeting000.wav"))
    different = synth.make_corpus(tmp_path / "b", 1, 25.0, speakers=(2, 3), seed=12, cache_dir=cache)
    a = _read(root / "meeting000.wav")
    b = _read(different.parent / "meeting000.wav")
    assert not np.allclose(a, b)
    assert (root / "meeting000.rttm").read_text() != (different.parent / "meeting000.rttm").read_text()


def test_overlap_ratio_is_meeting_like(tmp_path, cache):
    manifest = synth.make_corpus(tmp_path, 4, 30.0, speakers=(2, 4), seed=2, cache_dir=cache)
    stats = json.loads((tmp_path / "stats.json").read_text())
    measured = synth.corpus_statistics(manifest)
    assert measured["overlap_ratio"] == pytest.approx(stats["overlap_ratio"], abs=0.02)
    assert 0.08 < measured["overlap_ratio"] < 0.35, measured
    assert 0.5 < measured["speech_time"] / measured["duration"] < 0.98
    speakers = {len(list(p.glob("*.wav"))) for p in (tmp_path / "sources").iterdir()}
    assert speakers == {2, 3, 4}  # seed 2 draws 4, 2, 3, 4 speakers


def test_meeting_independent_of_corpus_size(tmp_path, cache, corpus):
    one = synth.make_corpus(tmp_path, 1, 25.0, speakers=(2, 3), seed=11, cache_dir=cache)
    assert np.array_equal(_read(one.parent / "meeting000.wav"), _read(corpus.parent / "meeting000.wav"))
    assert (one.parent / "meeting000.rttm").read_bytes() == (corpus.parent / "meeting000.rttm").read_bytes()


def test_voices_and_pools():
    from core.audio import SAMPLE_RATE

    assert synth.SAMPLE_RATE == SAMPLE_RATE
    counts = synth.count_voices()
    assert counts["variants"] >= 10 and counts["languages"] >= 5
    english, pseudo = synth.sentence_pools()
    assert len(english) > 500 and len(pseudo) > 500
    rng = np.random.default_rng(0)
    voices = synth.pick_voices(rng, 5)
    assert len({v.name for v in voices}) == 5 and all(v.engine == "espeak" for v in voices)


def test_progress_and_cancel(tmp_path, cache):
    seen = []
    synth.make_corpus(tmp_path / "p", 2, 6.0, seed=2, cache_dir=cache, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] == 0.0
    assert all(isinstance(m, str) and m for _, m in seen)
    with pytest.raises(Cancelled):
        synth.make_corpus(tmp_path / "c", 2, 6.0, seed=2, cache_dir=cache, should_stop=lambda: True)


@pytest.mark.parametrize("kwargs, message", [
    ({"duration": 0}, "--duration"),
    ({"duration": -3}, "--duration"),
    ({"num_meetings": 0}, "--num-meetings"),
    ({"speakers": (3, 2)}, "--speakers"),
    ({"speakers": (0, 2)}, "--speakers"),
])
def test_bad_arguments_raise_one_line_errors(tmp_path, kwargs, message):
    args = {"out_dir": tmp_path / "o", "num_meetings": 1, "duration": 5.0} | kwargs
    with pytest.raises(PixitError, match=message) as info:
        synth.make_corpus(**args)
    assert "\n" not in str(info.value)


def test_out_dir_is_a_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(PixitError, match="not a folder"):
        synth.make_corpus(target, 1, 5.0)


@pytest.mark.parametrize("text, expected", [("2-4", (2, 4)), ("3", (3, 3)), (" 1-2 ", (1, 2))])
def test_parse_speakers(text, expected):
    assert synth.parse_speakers(text) == expected


@pytest.mark.parametrize("text", ["3-2", "0-2", "a-b", "2-3-4", ""])
def test_parse_speakers_rejects(text):
    with pytest.raises(PixitError):
        synth.parse_speakers(text)


def _cli(*args: str, env_cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PIXIT_SYNTH_CACHE=str(env_cache), OMP_NUM_THREADS="2")
    exe = [str(PIXIT)] if PIXIT.exists() else [sys.executable, "-m", "core.cli"]
    return subprocess.run([*exe, "synth", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_writes_a_corpus(tmp_path, cache):
    out = tmp_path / "cli"
    proc = _cli("--out", str(out), "--num-meetings", "2", "--duration", "8", "--speakers", "2-2",
                "--seed", "3", "--pcm16", env_cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert "manifest.csv" in proc.stdout and "Traceback" not in proc.stderr
    rows = _rows(out / "manifest.csv")
    assert [r["audio"] for r in rows] == ["meeting000.wav", "meeting001.wav"]
    for row in rows:
        assert sf.info(str(out / row["audio"])).subtype == "PCM_16"
        assert len(list((out / row["sources"]).glob("*.wav"))) == 2
    assert any(cache.rglob("*.flac")), "utterances are cached"


def test_cli_bad_arguments(tmp_path, cache):
    """Each mistake: exit status 2, one line on stderr naming the option, no traceback, no files."""
    taken = tmp_path / "taken"
    taken.write_text("x")
    cases = [
        (["--out", str(tmp_path / "bad0"), "--num-meetings", "1", "--duration", "0"], "--duration"),
        (["--out", str(tmp_path / "bad1"), "--num-meetings", "0", "--duration", "5"], "--num-meetings"),
        (["--out", str(tmp_path / "bad2"), "--num-meetings", "x", "--duration", "5"], "--num-meetings"),
        (["--out", str(tmp_path / "bad3"), "--num-meetings", "1", "--duration", "5", "--speakers", "3-2"],
         "--speakers"),
        (["--out", str(tmp_path / "bad4"), "--num-meetings", "1", "--duration", "5", "--speakers", "0-2"],
         "--speakers"),
        (["--out", str(taken), "--num-meetings", "1", "--duration", "5"], "not a folder"),
    ]
    env = dict(os.environ, PIXIT_SYNTH_CACHE=str(cache), OMP_NUM_THREADS="1")
    exe = [str(PIXIT)] if PIXIT.exists() else [sys.executable, "-m", "core.cli"]
    procs = [subprocess.Popen([*exe, "synth", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for args, _ in cases]  # in parallel: startup dominates
    for proc, (args, message) in zip(procs, cases):
        _, stderr = proc.communicate(timeout=120)
        lines = stderr.strip().splitlines()
        assert proc.returncode == 2, (args, stderr)
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in stderr, (args, stderr)
        assert lines[0].startswith("pixit synth: error:")
    assert not any((tmp_path / f"bad{i}").exists() for i in range(5))


@pytest.mark.skipif(not synth.real_voice_clips(), reason="no real recording in assets/real")
def test_real_recordings_as_voices(tmp_path, cache, monkeypatch):
    """Speakers of the shipped real recording can take part; the ground truth stays exact."""
    from core.synth import voices

    monkeypatch.setattr(voices, "REAL_VOICE_PROBABILITY", 1.0)
    manifest = synth.make_corpus(tmp_path, 1, 15.0, speakers=(2, 2), seed=0, reverb=False, noise=False,
                                 cache_dir=cache)
    meta = json.loads((tmp_path / "meta" / "meeting000.json").read_text())
    names = [v["voice_name"] for v in meta["speakers"].values()]
    assert all(name.startswith("real:") for name in names) and len(set(names)) == 2
    row = _rows(manifest)[0]
    mixture = _read(tmp_path / row["audio"])
    sources = [_read(p) for p in sorted((tmp_path / row["sources"]).glob("*.wav"))]
    np.testing.assert_allclose(mixture, np.sum(sources, axis=0, dtype=np.float64), atol=1e-5)
    annotation = read_rttm_single(tmp_path / row["rttm"])
    assert sorted(annotation.labels()) == ["spk0", "spk1"]
    # and with real voices switched off, espeak-ng voices only
    synth.make_corpus(tmp_path / "off", 1, 5.0, speakers=(2, 2), seed=0, real_voices=False, cache_dir=cache)
    meta = json.loads((tmp_path / "off" / "meta" / "meeting000.json").read_text())
    assert not any(v["voice_name"].startswith("real:") for v in meta["speakers"].values())


def test_short_meetings_sources_match_rttm_labels(tmp_path, cache):
    manifest = synth.make_corpus(tmp_path, 4, 2.0, speakers=(3, 5), seed=0, cache_dir=cache)
    for row in _rows(manifest):
        labels = sorted(p.stem for p in (tmp_path / row["sources"]).glob("*.wav"))
        annotation = read_rttm_single(tmp_path / row["rttm"], uri=Path(row["audio"]).stem)
        assert labels == sorted(annotation.labels()) == [f"spk{k}" for k in range(len(labels))]
        assert len(_read(tmp_path / row["audio"])) == 2 * SR


def test_manifest_reads_with_core_data(corpus):
    """The training side (core.data.read_manifest) takes the corpus as it is."""
    from core.data import read_manifest

    recordings = read_manifest(corpus)
    assert len(recordings) == 3
    for recording in recordings:
        assert recording.duration == pytest.approx(25.0, abs=1e-3)
        assert recording.sources is not None and Path(recording.sources).is_dir()
        assert sorted(recording.annotation.labels()) == sorted(p.stem for p in Path(recording.sources).glob("*.wav"))


def test_interrupted_corpus_goes_on(tmp_path, cache):
    """A rerun with the same settings keeps the meetings already written and makes the missing ones
    (identical to a run that was never interrupted); other settings make everything again."""
    manifest = synth.make_corpus(tmp_path, 2, 6.0, speakers=(2, 2), seed=8, cache_dir=cache)
    first = _read(tmp_path / "meeting001.wav")
    kept = (tmp_path / "meeting000.wav").stat().st_mtime_ns
    (tmp_path / "meta" / "meeting001.json").unlink()  # meeting001 was cut off before its meta
    synth.make_corpus(tmp_path, 2, 6.0, speakers=(2, 2), seed=8, cache_dir=cache)
    assert (tmp_path / "meeting000.wav").stat().st_mtime_ns == kept
    assert np.array_equal(_read(tmp_path / "meeting001.wav"), first)
    assert len(_rows(manifest)) == 2 and json.loads((tmp_path / "stats.json").read_text())["meetings"] == 2
    synth.make_corpus(tmp_path, 2, 6.0, speakers=(2, 2), seed=9, cache_dir=cache)
    assert (tmp_path / "meeting000.wav").stat().st_mtime_ns != kept


def test_same_speakers_makes_a_series_of_meetings_of_the_same_people(tmp_path, cache):
    manifest = synth.make_corpus(tmp_path / "series", 2, 20.0, speakers=(3, 3), seed=5, cache_dir=cache,
                                 same_speakers=True, write_sources=False)
    metas = [json.loads((manifest.parent / "meta" / f"meeting00{i}.json").read_text()) for i in range(2)]
    voices = [{k: v["voice_name"] for k, v in m["speakers"].items()} for m in metas]
    assert voices[0] == voices[1] and len(set(voices[0].values())) == 3
    assert _read(manifest.parent / "meeting000.wav").tolist() != _read(manifest.parent / "meeting001.wav").tolist()
    with pytest.raises(PixitError, match="one number of speakers"):
        synth.make_corpus(tmp_path / "bad", 2, 20.0, speakers=(2, 3), same_speakers=True, cache_dir=cache)
