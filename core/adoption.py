"""May a retrained model replace the current one? Both run the whole pipeline (each with its own
params.json) on the held-out part of the corrections and on a small regression set of what the
current model was good at (the shipped demo meeting); the new one becomes current only if it is
better on the first and not worse by more than `REGRESSION_TOLERANCE` DER points on the second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.data import Recording, read_manifest

REGRESSION_TOLERANCE = 1.0  # DER points the regression set may lose
DEMO_MANIFEST = Path(__file__).resolve().parents[1] / "assets" / "demo" / "manifest.csv"


@dataclass
class Score:
    """DER and its parts in % of the scored speech, over a set of recordings."""

    der: float
    false_alarm: float
    missed: float
    confusion: float
    scored_s: float

    def row(self, name: str, what: str) -> list:
        return [name, what, self.der, self.false_alarm, self.missed, self.confusion, self.scored_s]


SCORE_HEADERS = ["model", "scored on", "DER %", "false alarm %", "missed %", "confusion %", "scored s"]


def score(model: str | Path, recordings: list[Recording], progress=None, should_stop=None,
          overrides: dict | None = None) -> Score:
    """DER of `model` (its own params.json, `overrides` fields replaced) over the recordings' UEMs."""
    from core.metrics import DERAccumulator, diarization_error
    from core.pipeline import Pipeline
    from core.pipeline.params import PipelineParams

    params = PipelineParams.for_model(model)
    if overrides:
        params = PipelineParams.from_dict({**params.to_dict(), **overrides})
    pipe = Pipeline(str(model), params, device="cpu")
    total = DERAccumulator()
    scored = 0.0
    for i, rec in enumerate(recordings):
        hyp = _run_on_scored_span(pipe, rec, should_stop, None if progress is None else
                                  (lambda f, m, i=i: progress((i + f) / len(recordings), m)))
        total.add(rec.uri, diarization_error(rec.annotation, hyp, uem=rec.uem))
        scored += rec.annotated_duration
    t = total.total()
    speech = float(t.get("total", 0.0)) or 1e-9
    pct = lambda x: round(100 * float(x) / speech, 2)  # noqa: E731
    return Score(round(100 * float(t["der"]), 2), pct(t["false_alarm"]), pct(t["missed_detection"]),
                 pct(t["confusion"]), round(scored, 1))


def _run_on_scored_span(pipe, rec: Recording, should_stop, progress):
    """The pipeline's annotation of the part of `rec` its UEM covers (a held-out tail of a long
    meeting is not worth running the whole meeting for), in the recording's own time."""
    from pyannote.core import Annotation, Segment

    from core.audio import SAMPLE_RATE as sr, load_audio

    waveform = load_audio(rec.audio)
    extent = rec.uem.extent() if len(rec.uem) else Segment(0.0, len(waveform) / sr)
    a = max(0.0, extent.start - 1.0)  # a second of context before the first scored frame
    piece = waveform[int(a * sr):int(min(len(waveform) / sr, extent.end + 1.0) * sr)]
    result = pipe(piece, uri=rec.uri, return_sources=False, should_stop=should_stop, progress=progress)
    shifted = Annotation(uri=rec.uri)
    for seg, track, label in result.annotation.itertracks(yield_label=True):
        shifted[Segment(seg.start + a, seg.end + a), track] = label
    return shifted


@dataclass
class Decision:
    adopt: bool
    reason: str
    rows: list[list] = field(default_factory=list)  # SCORE_HEADERS rows: current and new on each set


def decide(current: str | Path, new: str | Path, heldout: list[Recording], regression: list[Recording] | None = None,
           current_name: str = "current", new_name: str = "new", progress=None, should_stop=None,
           overrides: dict | None = None) -> Decision:
    """Score both models and apply the rule of the module docstring."""
    regression = default_regression() if regression is None else regression
    sets = [("held-out corrections", heldout)] + ([("regression set", regression)] if regression else [])
    scores, n = {}, 2 * len(sets)
    for k, (what, recs) in enumerate(sets):
        for j, (name, model) in enumerate(((current_name, current), (new_name, new))):
            step = 2 * k + j
            scores[what, name] = score(model, recs, None if progress is None else
                                       (lambda f, m, step=step: progress((step + f) / n, f"scoring {m}")), should_stop,
                                       overrides)
    rows = [scores[what, name].row(name, what) for what, _ in sets for name in (current_name, new_name)]
    held_old, held_new = scores["held-out corrections", current_name], scores["held-out corrections", new_name]
    if held_new.der >= held_old.der:
        return Decision(False, f"{new_name} is not better on the held-out corrections "
                               f"(DER {held_new.der:.1f} % vs {held_old.der:.1f} %)", rows)
    if regression:
        reg_old, reg_new = scores["regression set", current_name], scores["regression set", new_name]
        if reg_new.der > reg_old.der + REGRESSION_TOLERANCE:
            return Decision(False, f"{new_name} is better on the held-out corrections ({held_new.der:.1f} % vs "
                                   f"{held_old.der:.1f} %) but worse on the regression set ({reg_new.der:.1f} % vs "
                                   f"{reg_old.der:.1f} %)", rows)
    return Decision(True, f"{new_name} is better on the held-out corrections (DER {held_new.der:.1f} % vs "
                          f"{held_old.der:.1f} %)" + (" and not worse on the regression set" if regression else ""), rows)


def default_regression() -> list[Recording]:
    """The shipped demo meeting (empty when it is not there)."""
    return read_manifest(DEMO_MANIFEST) if DEMO_MANIFEST.is_file() else []
