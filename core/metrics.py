"""Evaluation metrics: DER (with its parts), SI-SDR / SI-SDR improvement, cpWER / uWER.

DER: core.der computes pyannote.metrics' DiarizationErrorRate components (optimal speaker mapping)
in O(n log n) (pyannote's own is quadratic in the number of segments). `collar` follows the
NIST md-eval / dscore convention: +-collar seconds around every reference boundary are not scored
(pyannote.metrics' own `collar` argument is the total width, 2 x collar). Without a
UEM, the scored region is the union of reference and hypothesis extents (pyannote's approximation,
made explicit so that it does not warn).
"""

from __future__ import annotations

import itertools
from typing import Iterable

import numpy as np
from pyannote.core import Annotation, Segment, Timeline
from scipy.optimize import linear_sum_assignment

__all__ = [
    "diarization_error", "DERAccumulator", "si_sdr", "si_sdr_improvement", "separation_scores",
    "cpwer", "uwer",
]


def _default_uem(reference: Annotation, hypothesis: Annotation) -> Timeline:
    """The union of both extents, from the tracks (building their Timelines costs more than the DER)."""
    segments = [seg for ann in (reference, hypothesis) for seg, _ in ann.itertracks()]
    extent = Segment(min(s.start for s in segments), max(s.end for s in segments)) if segments else Segment(0, 0)
    return Timeline([extent], uri=reference.uri)


def diarization_error(
    reference: Annotation,
    hypothesis: Annotation,
    uem: Timeline | None = None,
    collar: float = 0.0,
    skip_overlap: bool = False,
) -> dict:
    """DER and its parts for one recording.

    Returns seconds (false_alarm, missed_detection, confusion, total = scored reference speech,
    correct) and rates (der, false_alarm_rate, missed_detection_rate, confusion_rate), all
    relative to `total`. An empty reference gives der = 0 without false alarm, else inf.
    """
    import math

    from core.der import der_components

    if not (math.isfinite(collar) and collar >= 0):
        from core.errors import PixitError

        raise PixitError(f"collar must be a non-negative number, got {collar}")
    uem = uem if uem is not None else _default_uem(reference, hypothesis)
    detail = der_components(reference, hypothesis, uem, collar=collar, skip_overlap=skip_overlap)
    total = float(detail["total"])
    fa, md, conf = float(detail["false alarm"]), float(detail["missed detection"]), float(detail["confusion"])
    error = fa + md + conf

    def rate(x):
        if total > 0:
            return x / total
        return 0.0 if x == 0 else float("inf")

    return {
        "der": rate(error),
        "false_alarm": fa,
        "missed_detection": md,
        "confusion": conf,
        "total": total,
        "correct": detail["correct"],
        "false_alarm_rate": rate(fa),
        "missed_detection_rate": rate(md),
        "confusion_rate": rate(conf),
    }


class DERAccumulator:
    """Sums DER components over files (the total DER is the ratio of sums, not a mean of rates)."""

    KEYS = ("false_alarm", "missed_detection", "confusion", "total")

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, uri: str, result: dict) -> None:
        self.rows.append({"uri": uri, **result})

    def total(self) -> dict:
        sums = {k: sum(r[k] for r in self.rows) for k in self.KEYS}
        t = sums["total"]
        err = sums["false_alarm"] + sums["missed_detection"] + sums["confusion"]
        rate = (lambda x: x / t) if t > 0 else (lambda x: 0.0 if x == 0 else float("inf"))
        return {
            "der": rate(err), **sums,
            "false_alarm_rate": rate(sums["false_alarm"]),
            "missed_detection_rate": rate(sums["missed_detection"]),
            "confusion_rate": rate(sums["confusion"]),
        }


# ----------------------------------------------------------------------------------------------
# separation
# ----------------------------------------------------------------------------------------------
def si_sdr(estimate: np.ndarray, reference: np.ndarray, eps: float = 1e-8) -> np.ndarray | float:
    """Scale-invariant SDR in dB over the last axis (zero-mean, float64 accumulation)."""
    est = np.asarray(estimate, np.float64)
    ref = np.asarray(reference, np.float64)
    est = est - est.mean(axis=-1, keepdims=True)
    ref = ref - ref.mean(axis=-1, keepdims=True)
    alpha = np.sum(est * ref, axis=-1, keepdims=True) / (np.sum(ref * ref, axis=-1, keepdims=True) + eps)
    target = alpha * ref
    noise = est - target
    value = 10 * np.log10((np.sum(target**2, axis=-1) + eps) / (np.sum(noise**2, axis=-1) + eps))
    return float(value) if np.ndim(value) == 0 else value


def si_sdr_improvement(estimate: np.ndarray, reference: np.ndarray, mixture: np.ndarray) -> np.ndarray | float:
    """SI-SDR(estimate, reference) - SI-SDR(mixture, reference), in dB."""
    mixture = np.broadcast_to(np.asarray(mixture), np.shape(reference))
    return si_sdr(estimate, reference) - si_sdr(mixture, reference)


def separation_scores(
    estimates: np.ndarray,
    references: np.ndarray,
    mixture: np.ndarray | None = None,
    estimate_labels: list[str] | None = None,
    reference_labels: list[str] | None = None,
) -> dict:
    """SI-SDR(i) with the best one-to-one mapping of estimated speakers (columns of a (T, H) array)
    to reference sources ((T, R)); lengths are cropped to the shorter. A reference without an
    estimate is reported unmatched and left out of the means."""
    n = min(len(estimates), len(references))
    est, ref = np.asarray(estimates)[:n], np.asarray(references)[:n]
    H, R = est.shape[1], ref.shape[1]
    estimate_labels = estimate_labels or [str(i) for i in range(H)]
    reference_labels = reference_labels or [str(j) for j in range(R)]
    scores = np.array([[si_sdr(est[:, i], ref[:, j]) for j in range(R)] for i in range(H)]).reshape(H, R)
    rows, cols = linear_sum_assignment(-scores) if H and R else ([], [])
    pairs = []
    for i, j in zip(rows, cols):
        row = {"estimate": estimate_labels[i], "reference": reference_labels[j], "si_sdr": float(scores[i, j])}
        if mixture is not None:
            row["si_sdr_i"] = float(scores[i, j] - si_sdr(np.asarray(mixture)[:n], ref[:, j]))
        pairs.append(row)
    matched = {reference_labels[j] for j in cols}
    out = {
        "pairs": pairs,
        "unmatched_references": [l for l in reference_labels if l not in matched],
        "si_sdr": float(np.mean([p["si_sdr"] for p in pairs])) if pairs else float("nan"),
    }
    if mixture is not None:
        out["si_sdr_i"] = float(np.mean([p["si_sdr_i"] for p in pairs])) if pairs else float("nan")
    return out


# ----------------------------------------------------------------------------------------------
# transcripts (users who run ASR on the separated tracks)
# ----------------------------------------------------------------------------------------------
def _as_speaker_dict(transcripts) -> dict[str, str]:
    if isinstance(transcripts, dict):
        return {str(k): str(v) for k, v in transcripts.items()}
    raise TypeError("transcripts must be a dict {speaker: text}")


def _seglst(transcripts: dict[str, str], session: str = "rec") -> list[dict]:
    return [{"session_id": session, "speaker": str(k), "words": str(v), "start_time": 0.0, "end_time": 0.0}
            for k, v in transcripts.items()]


def cpwer(reference: dict[str, str], hypothesis: dict[str, str]) -> dict:
    """Concatenated minimum-permutation WER (meeteval): each speaker's words concatenated, best
    speaker mapping. Returns error_rate, errors, length, and the mapping."""
    from meeteval.wer import cpwer as _cpwer

    ref, hyp = _as_speaker_dict(reference), _as_speaker_dict(hypothesis)
    result = _cpwer(_seglst(ref), _seglst(hyp))["rec"]
    return {
        "error_rate": float(result.error_rate) if result.length else (0.0 if not result.errors else float("inf")),
        "errors": int(result.errors),
        "length": int(result.length),
        "insertions": int(result.insertions),
        "deletions": int(result.deletions),
        "substitutions": int(result.substitutions),
        "assignment": [list(a) for a in (result.assignment or [])],
    }


def uwer(reference: dict[str, str] | str, hypothesis: dict[str, str] | str) -> dict:
    """Speaker-agnostic WER (words of all speakers as one stream, e.g. ASR of the mixture vs the
    reference transcript). Dicts are joined in their iteration order: pass time-ordered text for
    a meaningful number."""
    ref = " ".join(reference.values()) if isinstance(reference, dict) else str(reference)
    hyp = " ".join(hypothesis.values()) if isinstance(hypothesis, dict) else str(hypothesis)
    r = cpwer({"all": ref}, {"all": hyp})
    return {k: r[k] for k in ("error_rate", "errors", "length", "insertions", "deletions", "substitutions")}
