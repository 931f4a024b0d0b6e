"""Manifests and the MoM pair sampler: invariants on hand-built annotations."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from pyannote.core import Annotation, Segment, Timeline

from core.data import (
    FixedPairs,
    FrameGrid,
    PairSampler,
    Recording,
    TrainPairs,
    read_chunk,
    read_manifest,
)
from core.errors import PixitError

from conftest import write_meeting

torch.set_num_threads(2)

GRID = FrameGrid(num_frames=249, step=128, size=144, sample_rate=16000)  # 2 s chunks


def _recording(tmp_path, uri, duration, turns, uem=None):
    """A hand-built Recording (audio is low noise, written once so make_item can read it)."""
    audio = tmp_path / f"{uri}.wav"
    if not audio.exists():
        sf.write(audio, 0.01 * np.random.default_rng(0).standard_normal(int(duration * 16000)).astype(np.float32), 16000)
    annotation = Annotation(uri=uri)
    for i, (s, e, label) in enumerate(turns):
        annotation[Segment(s, e), i] = label
    regions = uem or [(0.0, duration)]
    return Recording(uri=uri, audio=audio, annotation=annotation,
                     uem=Timeline([Segment(s, e) for s, e in regions], uri=uri), duration=duration)


def _active(rec: Recording, start: float, end: float) -> set[str]:
    """Speakers with speech strictly inside [start, end): computed independently of the sampler."""
    out = set()
    for seg, _, label in rec.annotation.itertracks(yield_label=True):
        if min(seg.end, end) - max(seg.start, start) > 0:
            out.add(label)
    return out


# A hand-built meeting: 4 speakers, a 3-region UEM, a long silent tail after the last turn.
TURNS = [
    (0.5, 3.0, "A"), (2.5, 5.0, "B"), (5.5, 7.0, "A"), (6.0, 9.0, "C"), (9.5, 11.0, "B"),
    (15.5, 18.0, "D"), (17.0, 20.0, "A"), (21.0, 23.0, "B"), (22.0, 24.0, "C"), (24.0, 26.0, "D"),
    (30.0, 31.0, "A"),
]
UEM = [(0.0, 12.0), (15.0, 27.0), (29.0, 45.0)]


@pytest.fixture
def hand_sampler(tmp_path):
    rec1 = _recording(tmp_path, "hand", 45.0, TURNS, UEM)
    rec2 = _recording(tmp_path, "other", 20.0, [(1.0, 4.0, "X"), (3.0, 9.0, "Y"), (12.0, 15.0, "X")])
    return PairSampler([rec1, rec2], GRID, chunk_duration=2.0, max_speakers=3)


def test_pairs_are_same_file_disjoint_bounded_inside_uem(hand_sampler):
    rng = np.random.default_rng(0)
    D = hand_sampler.chunk_duration
    for _ in range(600):
        pair = hand_sampler.sample_pair(rng)
        assert pair.first.file == pair.second.file
        rec = hand_sampler.recordings[pair.first.file]
        if pair.second.silent:
            continue
        s1, s2 = _active(rec, pair.first.start, pair.first.start + D), _active(rec, pair.second.start, pair.second.start + D)
        assert not (s1 & s2), (pair, s1, s2)
        assert len(s1) + len(s2) <= 3
        labels = hand_sampler.files[pair.first.file].labels
        assert {labels[k] for k in pair.first.speakers} == s1 and {labels[k] for k in pair.second.speakers} == s2
        assert abs(pair.first.start - pair.second.start) >= D - 1e-9  # no time overlap
        for chunk in (pair.first, pair.second):
            assert any(a - 1e-9 <= chunk.start and chunk.start + D <= b + 1e-9 for a, b in rec.uem.support()), chunk
    assert hand_sampler.stats["silent_fallback"] == 0


def test_second_chunk_uses_tail_gap_and_all_regions(hand_sampler):
    """Chunk 2 for a chunk 1 with speaker A can start after A's last turn (the tail) and in every UEM region."""
    rng = np.random.default_rng(1)
    seconds, regions = [], set()
    for _ in range(800):
        pair = hand_sampler.sample_pair(rng)
        if pair.first.file != 0:
            continue
        labels = hand_sampler.files[0].labels
        regions.add(next(i for i, (a, b) in enumerate(UEM) if a <= pair.second.start <= b))
        if "A" in {labels[k] for k in pair.first.speakers}:
            seconds.append(pair.second.start)
    assert regions == {0, 1, 2}
    assert max(seconds) > 31.0  # after A's very last turn (30-31 s): the tail gap is a candidate


def test_file_probability_proportional_to_annotated_duration(tmp_path):
    recs = [_recording(tmp_path, "short", 10.0, []), _recording(tmp_path, "long", 40.0, [], [(0.0, 30.0)])]
    sampler = PairSampler(recs, GRID, chunk_duration=2.0, max_speakers=3)
    rng = np.random.default_rng(2)
    files = np.array([sampler.sample_pair(rng).first.file for _ in range(3000)])
    assert abs(files.mean() - 0.75) < 0.03  # annotated 10 s vs 30 s


def test_reproducible_with_same_seed_different_with_other_seed(hand_sampler):
    def draw(seed):
        stream = iter(TrainPairs(hand_sampler, seed=seed))
        return [next(stream) for _ in range(4)]

    a, b, c = draw(7), draw(7), draw(8)
    for x, y in zip(a, b):
        assert all(torch.equal(x[key], y[key]) for key in x)
    assert not all(torch.equal(x["mix1"], z["mix1"]) for x, z in zip(a, c))
    # a second iterator of the same dataset (next epoch) continues with fresh pairs
    dataset = TrainPairs(hand_sampler, seed=7)
    first = next(iter(dataset))
    second = next(iter(dataset))
    assert torch.equal(first["mix1"], a[0]["mix1"]) and not torch.equal(first["mix1"], second["mix1"])


def test_worker_streams_differ_and_rank_matters(hand_sampler):
    from core.data import worker_rng

    draws = {(r, w): worker_rng(3, r, w).random() for r in range(2) for w in range(2)}
    assert len(set(draws.values())) == 4
    loader = torch.utils.data.DataLoader(TrainPairs(hand_sampler, seed=3), batch_size=2, num_workers=2)
    it = iter(loader)
    b0, b1 = next(it), next(it)  # batches come from worker 0 then worker 1
    assert not torch.equal(b0["mix1"], b1["mix1"])


def test_validation_pairs_identical_every_epoch(hand_sampler):
    val = FixedPairs(hand_sampler, num_pairs=6, seed=5)
    again = FixedPairs(hand_sampler, num_pairs=6, seed=5)
    assert val.pairs == again.pairs
    epoch1 = [val[i] for i in range(len(val))]
    epoch2 = [val[i] for i in range(len(val))]
    for x, y in zip(epoch1, epoch2):
        assert all(torch.equal(x[key], y[key]) for key in x)
    assert FixedPairs(hand_sampler, num_pairs=6, seed=6).pairs != val.pairs


def test_targets_on_frame_grid_and_mom_columns(tmp_path):
    turns = [(0.25, 1.0, "A"), (2.5, 3.5, "B"), (3.0, 3.75, "C")]
    sampler = PairSampler([_recording(tmp_path, "t", 10.0, turns, [(0.0, 4.0)])], GRID, chunk_duration=2.0)
    from core.data import Chunk, Pair

    pair = Pair(Chunk(0, 0.0, (0,)), Chunk(0, 2.0, (1, 2)))
    item = sampler.make_item(pair)
    assert item["mix1"].shape == (32000,) and item["y1"].shape == (3, 249)
    centres = (np.arange(249) * 128 + 72) / 16000
    expected_a = ((centres >= 0.25) & (centres < 1.0)).astype(np.float32)
    assert np.array_equal(item["y1"][0].numpy(), expected_a)
    assert item["y1"][1:].sum() == 0
    expected_b = ((centres >= 0.5) & (centres < 1.5)).astype(np.float32)  # B relative to chunk 2
    expected_c = ((centres >= 1.0) & (centres < 1.75)).astype(np.float32)
    assert np.array_equal(item["y2"][0].numpy(), expected_b) and np.array_equal(item["y2"][1].numpy(), expected_c)
    y_mom = item["y_mom"].numpy()
    assert np.array_equal(y_mom[0], expected_a) and np.array_equal(y_mom[1], expected_b) and np.array_equal(y_mom[2], expected_c)


def test_too_many_speakers_keeps_most_talkative_and_falls_back(tmp_path):
    # 4 speakers always talking together: no pair with <= 2 speakers exists
    turns = [(0.0, 10.0, "A"), (0.0, 10.0, "B"), (0.0, 9.0, "C"), (0.0, 0.5, "D")]
    sampler = PairSampler([_recording(tmp_path, "dense", 10.0, turns)], GRID, chunk_duration=2.0, max_speakers=2, max_tries=5)
    pair = sampler.sample_pair(np.random.default_rng(0))
    assert pair.second.silent and sampler.stats["silent_fallback"] == 1
    labels = sampler.files[0].labels
    assert len(pair.first.speakers) == 2 and "D" not in {labels[k] for k in pair.first.speakers}
    item = sampler.make_item(pair)
    assert item["mix2"].abs().sum() == 0 and item["y2"].sum() == 0


def test_chunks_longer_than_every_region_is_an_error(tmp_path):
    with pytest.raises(PixitError, match="at least 5 s"):
        PairSampler([_recording(tmp_path, "short", 10.0, [], [(0.0, 4.0), (6.0, 9.0)])], GRID, chunk_duration=5.0)


def test_read_manifest_csv_folder_and_sources(tmp_path):
    write_meeting(tmp_path / "data", "m1", duration=8.0, num_speakers=2, seed=1)
    write_meeting(tmp_path / "data", "m2", duration=8.0, num_speakers=3, seed=2, uem=[(0.0, 3.0), (4.0, 8.0)])
    manifest = tmp_path / "data" / "list.csv"
    manifest.write_text("audio,rttm,uem,sources\nm1.wav,m1.rttm,,sources/m1\nm2.wav,m2.rttm,m2.uem,sources/m2\n")
    recs = read_manifest(manifest)
    assert [r.uri for r in recs] == ["m1", "m2"]
    assert recs[0].duration == pytest.approx(8.0) and recs[0].annotated_duration == pytest.approx(8.0)
    assert recs[1].annotated_duration == pytest.approx(7.0)
    assert recs[1].sources == tmp_path / "data" / "sources" / "m2" and len(recs[1].labels) == 3
    folder = read_manifest(tmp_path / "data")  # folder of name.wav + name.rttm (+ .uem, + sources/)
    assert [r.uri for r in folder] == ["m1", "m2"] and folder[1].sources is not None
    assert folder[1].annotated_duration == pytest.approx(7.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty manifest"),
        ("path,labels\nm1.wav,m1.rttm\n", "bad header"),
        ("audio,rttm\n", "no recordings"),
        ("audio,rttm\nmissing.wav,m1.rttm\n", "row 2.*missing.wav"),
        ("audio,rttm\nm1.wav,nothere.rttm\n", "row 2.*nothere.rttm"),
        ("audio,rttm\nm1.wav,m1.rttm\nm1.wav,m1.rttm\n", "row 3.*already listed"),
        ("audio,rttm\nm1.wav\n", "row 2.*columns"),
        ("audio,rttm\nm1.wav,long.rttm\n", "row 2.*past the end"),
    ],
)
def test_manifest_errors_are_one_line_and_name_the_row(tmp_path, text, message):
    write_meeting(tmp_path, "m1", duration=6.0, num_speakers=2, seed=1)
    (tmp_path / "long.rttm").write_text("SPEAKER m1 1 4.0 5.0 <NA> <NA> A <NA> <NA>\n")
    manifest = tmp_path / "bad.csv"
    manifest.write_text(text)
    with pytest.raises(PixitError, match=message) as info:
        read_manifest(manifest)
    assert "\n" not in str(info.value) and "bad.csv" in str(info.value)


def test_manifest_missing_and_folder_without_rttm(tmp_path):
    with pytest.raises(PixitError, match="no such manifest"):
        read_manifest(tmp_path / "nope.csv")
    sf.write(tmp_path / "lonely.wav", np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(PixitError, match="lonely.rttm"):
        read_manifest(tmp_path)


def test_read_chunk_partial_and_resampled(tmp_path):
    tone = np.sin(2 * np.pi * 440 * np.arange(8000 * 4) / 8000).astype(np.float32)
    sf.write(tmp_path / "lo.wav", tone, 8000)
    chunk = read_chunk(tmp_path / "lo.wav", 1.0, 2.0)
    assert chunk.shape == (32000,) and chunk.dtype == np.float32
    reference = np.sin(2 * np.pi * 440 * (np.arange(32000) / 16000 + 1.0))
    assert np.abs(chunk[200:-200] - reference[200:-200]).max() < 0.05
    past_end = read_chunk(tmp_path / "lo.wav", 3.0, 2.0)
    assert past_end.shape == (32000,) and np.all(past_end[16100:] == 0)


def test_ground_truth_sources_follow_mom_columns(meeting, tmp_path):
    from core.data import load_recording

    rec = load_recording(meeting["audio"], meeting["rttm"], meeting["uem"], meeting["sources"])
    sampler = PairSampler([rec], GRID, chunk_duration=2.0, with_sources=True)
    rng = np.random.default_rng(4)
    for _ in range(5):
        pair = sampler.sample_pair(rng)
        item = sampler.make_item(pair)
        n1, n2 = len(pair.first.speakers), len(pair.second.speakers)
        assert item["src_mom"].shape == (3, 32000)
        assert int(item["src_valid"].sum()) <= n1 + n2
        # the mixture is the sum of the sources (plus the tiny noise floor)
        total1 = item["src_mom"][:n1].sum(0)
        assert torch.mean((item["mix1"] - total1) ** 2) < 1e-4


def test_frame_grid_from_model(tiny_model_config):
    from core.models.totatonet import ToTaToNet

    model = ToTaToNet(tiny_model_config)
    grid = FrameGrid.from_model(model, 2.0)
    _, act = model(torch.zeros(1, 32000))
    assert grid.num_frames == act.shape[-1] and grid.step == model.frame_step and grid.size == model.frame_size
