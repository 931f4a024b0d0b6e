"""`pixit evaluate`: DER (false alarm, missed detection, confusion) of hypothesis RTTMs against
reference RTTMs, per recording and in total (ratio of summed errors, not a mean of rates).

--reference / --hypothesis / --uem are files (possibly with several recordings) or folders of
.rttm / .uem files. --collar S forgives +-S seconds around every reference boundary (NIST md-eval
convention). A reference recording without a hypothesis counts as all missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.commands._args import bounded_float
from core.errors import PixitError

MAX_COLLAR = 10.0  # s; md-eval's usual collar is 0.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", required=True, metavar="R", help="reference RTTM file or folder")
    parser.add_argument("--hypothesis", required=True, metavar="H", help="hypothesis RTTM file or folder")
    parser.add_argument("--uem", metavar="U", help="UEM file or folder (default: union of reference and hypothesis extents)")
    parser.add_argument("--collar", type=bounded_float(0.0, MAX_COLLAR), default=0.0, metavar="S", help=f"forgiveness collar, +-S s around reference boundaries, 0 to {MAX_COLLAR:g} (default 0)")
    parser.add_argument("--skip-overlap", action="store_true", help="do not score overlapped reference speech")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _files(path: str, suffix: str, what: str) -> list[Path]:
    p = Path(path).expanduser()
    if p.is_dir():
        found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() == suffix)
        if not found:
            raise PixitError(f"{what} folder {p} holds no {suffix} files")
        return found
    if p.is_file():
        return [p]
    raise PixitError(f"{what} {p}: no such file or folder")


def load_rttms(path: str, what: str) -> dict:
    from core.annotation import read_rttm

    annotations: dict = {}
    for f in _files(path, ".rttm", what):
        per_file = read_rttm(f)
        if not per_file and Path(path).is_dir():
            from pyannote.core import Annotation

            from core.annotation import uri_for

            per_file = {uri_for(f.stem): Annotation(uri=uri_for(f.stem))}  # an empty RTTM = no speech in that recording
        for uri, ann in per_file.items():
            if uri in annotations:
                raise PixitError(f"{what}: recording {uri!r} appears in more than one file")
            annotations[uri] = ann
    return annotations


def load_uems(path: str) -> dict:
    from core.annotation import read_uem

    uems: dict = {}
    for f in _files(path, ".uem", "uem"):
        uems.update(read_uem(f))
    return uems


def evaluate(reference: str, hypothesis: str, uem: str | None = None, collar: float = 0.0, skip_overlap: bool = False) -> dict:
    """{'files': [{uri, der, ...}], 'total': {...}, 'notes': [...]} (library entry point of the command)."""
    from pyannote.core import Annotation

    from core.metrics import DERAccumulator, diarization_error

    if not 0 <= collar <= MAX_COLLAR:  # NaN fails too
        raise PixitError(f"--collar must be between 0 and {MAX_COLLAR:g} s, got {collar}")
    refs = load_rttms(reference, "reference")
    hyps = load_rttms(hypothesis, "hypothesis")
    uems = load_uems(uem) if uem else {}
    if not refs:
        raise PixitError(f"reference {reference} holds no speaker turns")
    notes = []
    missing = sorted(set(refs) - set(hyps))
    if missing:
        notes.append(f"no hypothesis for {len(missing)} recording(s), scored as all missed: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    extra = sorted(set(hyps) - set(refs))
    if extra:
        notes.append(f"hypothesis recordings without reference ignored: {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    if uems:
        no_uem = sorted(set(refs) - set(uems))
        if no_uem:
            notes.append(f"no UEM for {len(no_uem)} recording(s), scored on the reference/hypothesis extent")
    acc = DERAccumulator()
    for uri in sorted(refs):
        result = diarization_error(refs[uri], hyps.get(uri, Annotation(uri=uri)), uem=uems.get(uri), collar=collar, skip_overlap=skip_overlap)
        acc.add(uri, result)
    return {"files": acc.rows, "total": acc.total(), "notes": notes, "collar": collar, "skip_overlap": skip_overlap}


def format_table(report: dict) -> str:
    rows = [("recording", "DER%", "FA%", "MD%", "Conf%", "speech(s)")]
    for r in report["files"] + [{"uri": "TOTAL", **report["total"]}]:
        rows.append((r["uri"], f"{100 * r['der']:.2f}", f"{100 * r['false_alarm_rate']:.2f}", f"{100 * r['missed_detection_rate']:.2f}",
                     f"{100 * r['confusion_rate']:.2f}", f"{r['total']:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def run(args) -> int:
    report = evaluate(args.reference, args.hypothesis, args.uem, args.collar, args.skip_overlap)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report), flush=True)
        for note in report["notes"]:
            print(f"note: {note}", file=sys.stderr)
    return 0
