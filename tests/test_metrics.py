"""Metrics against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyannote.core import Annotation, Segment, Timeline

from core.metrics import (DERAccumulator, cpwer, diarization_error, separation_scores, si_sdr,
                          si_sdr_improvement, uwer)


def _annotation(turns, uri="rec"):
    ann = Annotation(uri=uri)
    for start, end, label in turns:
        ann[Segment(start, end)] = label
    return ann


REF = _annotation([(0, 10, "A"), (5, 15, "B")])
# X -> A and Y -> B is the optimal mapping; X on [12, 15] is confusion, Z is a false alarm
HYP = _annotation([(0, 8, "X"), (8, 12, "Y"), (12, 15, "X"), (16, 17, "Z")])


def test_der_matches_hand_computation():
    # reference speech 20 s; missed: B on [5, 8] (3 s) + A on [8, 10] (2 s) = 5 s;
    # confusion: [12, 15] = 3 s; false alarm: Z [16, 17] = 1 s (default UEM: union extent [0, 17])
    r = diarization_error(REF, HYP)
    assert r["total"] == pytest.approx(20.0)
    assert r["missed_detection"] == pytest.approx(5.0)
    assert r["confusion"] == pytest.approx(3.0)
    assert r["false_alarm"] == pytest.approx(1.0)
    assert r["der"] == pytest.approx(9 / 20)
    assert r["missed_detection_rate"] == pytest.approx(5 / 20)


def test_der_with_uem_collar_and_skip_overlap():
    r = diarization_error(REF, HYP, uem=Timeline([Segment(0, 15)]))
    assert r["false_alarm"] == pytest.approx(0.0) and r["der"] == pytest.approx(8 / 20)
    # collar 0.5 = +-0.5 s around each reference boundary (0, 5, 10, 15): scored reference 16 s,
    # missed 2.5 ([5.5, 8]) + 1.5 ([8, 9.5]), confusion 2.5 ([12, 14.5]), false alarm 1
    r = diarization_error(REF, HYP, collar=0.5)
    assert r["total"] == pytest.approx(16.0)
    assert r["missed_detection"] == pytest.approx(4.0)
    assert r["confusion"] == pytest.approx(2.5)
    assert r["der"] == pytest.approx(7.5 / 16)
    # skip_overlap drops [5, 10]: scored reference 10 s, confusion 3, false alarm 1
    r = diarization_error(REF, HYP, skip_overlap=True)
    assert r["total"] == pytest.approx(10.0) and r["der"] == pytest.approx(4 / 10)


def test_der_edge_cases_and_accumulator():
    empty = Annotation(uri="rec")
    assert diarization_error(empty, empty)["der"] == 0.0
    assert math.isinf(diarization_error(empty, HYP)["der"])
    assert diarization_error(REF, empty)["der"] == pytest.approx(1.0)
    acc = DERAccumulator()
    acc.add("a", diarization_error(REF, HYP))           # 9 / 20
    acc.add("b", diarization_error(REF, empty))         # 20 / 20
    assert acc.total()["der"] == pytest.approx(29 / 40)  # ratio of sums, not mean of rates


@pytest.mark.parametrize("seed", range(6))
def test_der_equals_pyannote_metrics_on_random_annotations(seed):
    """core.der (linear) gives pyannote.metrics' components: overlaps, same-label overlaps, touching
    segments, unmatched speakers, multi-region UEMs, collars and skip_overlap."""
    import warnings

    from pyannote.metrics.diarization import DiarizationErrorRate

    rng = np.random.default_rng(seed)

    def random_annotation(labels):
        turns, t = [], 0.0
        for _ in range(60):
            t += float(rng.choice([0.0, rng.uniform(-1.0, 1.5)]))  # touching, overlapping, gaps
            d = round(float(rng.uniform(0.05, 3.0)), 3)
            turns.append((round(max(0.0, t), 3), round(max(0.0, t) + d, 3), str(rng.choice(labels))))
            t += d
        return _annotation(turns)

    ref, hyp = random_annotation(["A", "B", "C"]), random_annotation(["s1", "s2", "s3", "s4"])
    uems = [Timeline([Segment(0, 200)]), Timeline([Segment(1.5, 30), Segment(35, 70.25)])]
    for uem in uems:
        for collar in (0.0, 0.25):
            for skip in (False, True):
                ours = diarization_error(ref, hyp, uem=uem, collar=collar, skip_overlap=skip)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    theirs = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip).compute_components(ref, hyp, uem=uem)
                for key, name in (("false_alarm", "false alarm"), ("missed_detection", "missed detection"),
                                  ("confusion", "confusion"), ("total", "total"), ("correct", "correct")):
                    assert ours[key] == pytest.approx(theirs[name], abs=1e-5), (key, uem, collar, skip)


def test_si_sdr_and_improvement():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(16000)
    noise = rng.standard_normal(16000)
    assert si_sdr(-3.0 * ref, ref) > 80  # scale and sign invariant
    est = ref + 0.1 * noise
    expected = 10 * np.log10(np.sum((np.dot(est, ref) / np.dot(ref, ref) * ref) ** 2) /
                             np.sum((est - np.dot(est, ref) / np.dot(ref, ref) * ref) ** 2))
    assert si_sdr(est - est.mean(), ref - ref.mean()) == pytest.approx(expected, abs=0.05)
    mixture = ref + noise
    assert si_sdr_improvement(est, ref, mixture) == pytest.approx(si_sdr(est, ref) - si_sdr(mixture, ref))
    batch = si_sdr(np.stack([est, mixture]), np.stack([ref, ref]))
    assert batch.shape == (2,)


def test_separation_scores_finds_best_permutation():
    rng = np.random.default_rng(1)
    refs = rng.standard_normal((8000, 2))
    est = np.stack([refs[:, 1] * 2, refs[:, 0] + 0.01 * rng.standard_normal(8000), rng.standard_normal(8000)], axis=1)
    out = separation_scores(est, refs, mixture=refs.sum(1), estimate_labels=["S0", "S1", "S2"], reference_labels=["a", "b"])
    pairs = {p["reference"]: p["estimate"] for p in out["pairs"]}
    assert pairs == {"a": "S1", "b": "S0"}
    assert out["si_sdr"] > 35 and out["si_sdr_i"] > 30 and out["unmatched_references"] == []
    out = separation_scores(est[:, :1], refs)
    assert out["unmatched_references"] == ["0"]


def test_cpwer_and_uwer():
    ref = {"A": "hello world", "B": "good morning everyone"}
    hyp = {"spk1": "good morning everyone", "spk2": "hello word"}
    r = cpwer(ref, hyp)
    assert r["errors"] == 1 and r["length"] == 5 and r["error_rate"] == pytest.approx(0.2)
    r = uwer("hello world good morning", "hello word good morning")
    assert r["errors"] == 1 and r["error_rate"] == pytest.approx(0.25)
