"""`pixit bench --compare pyannote`: pyannote.audio's SpeechSeparation beside `pixit separate`.

Both run on the same generated meeting, each in a fresh process with the same number of threads:
- the same weights: the model exported as a pyannote.audio checkpoint (core.models.pyannote_export;
  the shipped default model's encoder ReLU through `relu_subclass`);
- the same embedding: this project's resemblyzer encoder, put in place of pyannote's pretrained
  embedding (core/models/pyannote_pipeline_probe.py, run in `.venv-pyannote`);
- the same parameters, mapped by `pyannote_settings` (the notes say what has no counterpart).
Printed per duration: wall time, CPU time (user + system of the child), peak resident memory and DER
(collar 0, overlap scored) of both, and pyannote / pixit ratios.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from core.annotation import write_rttm
from core.commands.bench import SR, generate_meeting, last_line, measure, run_measured
from core.errors import PixitError
from core.pipeline import PipelineParams

_PROBE = Path(__file__).resolve().parent.parent / "models" / "pyannote_pipeline_probe.py"


def pyannote_settings(params: PipelineParams) -> tuple[dict, list[str]]:
    """pyannote SpeechSeparation's constructor arguments and hyper-parameters for this project's
    parameters, and a note for each setting of ours that pyannote has no counterpart for."""
    settings = {
        "init": {"segmentation_step": params.step / params.window, "segmentation_batch_size": params.batch_size,
                 "embedding_batch_size": params.batch_size, "embedding_exclude_overlap": True,
                 "clustering": "AgglomerativeClustering"},
        "params": {"segmentation": {"threshold": params.threshold, "min_duration_off": params.min_duration_off},
                   "clustering": {"method": params.clustering_method, "threshold": params.clustering_threshold,
                                  "min_cluster_size": params.min_cluster_size},
                   "separation": {"leakage_removal": True, "asr_collar": params.leakage_collar}},
        "embedding": {"name": "resemblyzer", "min_duration": params.min_embedding_duration},
    }
    notes = []
    if params.min_duration_on > 0:
        notes.append(f"min_duration_on {params.min_duration_on} s has no counterpart in pyannote (its turns are kept)")
    if params.vad != "none":
        notes.append(f"vad {params.vad} has no counterpart in pyannote")
    if params.separation_step not in (None, params.window / 2):
        notes.append(f"separation_step {params.separation_step} s has no counterpart in pyannote")
    return settings, notes


def _reference(duration: float, num_speakers: int, folder: Path) -> tuple[Path, Path]:
    """The generated meeting and its reference RTTM."""
    from pyannote.core import Annotation, Segment

    from core.audio import save_audio

    audio, turns = generate_meeting(duration, num_speakers)
    wav = folder / f"meeting_{int(duration)}s.wav"
    save_audio(wav, audio, SR)
    reference = Annotation(uri=wav.stem)
    for start, end, speaker in turns:
        reference[Segment(start, end), len(reference)] = speaker
    rttm = folder / f"meeting_{int(duration)}s.ref.rttm"
    write_rttm(reference, rttm)
    return wav, rttm


def _der(reference: Path, hypothesis: Path) -> float:
    from core.annotation import read_rttm_single
    from core.metrics import diarization_error

    return diarization_error(read_rttm_single(reference), read_rttm_single(hypothesis))["der"]


def _run_pyannote(python: Path, wav: Path, checkpoint: Path, settings: Path, out: Path, env: dict) -> dict:
    import core

    out.mkdir(parents=True, exist_ok=True)
    root = str(Path(core.__file__).resolve().parent.parent)  # core.embeddings and the ReLU architecture
    # the probe runs with -c from its output folder: run as a script, core/models/ would come first on
    # sys.path and core/models/ssl.py would shadow the ssl module
    result = run_measured([str(python), "-c", _PROBE.read_text(encoding="utf-8"), str(wav), str(checkpoint),
                           str(settings), str(out)],
                          env={**env, "PYANNOTE_METRICS_ENABLED": "0", "PYTHONPATH": root}, cwd=out)
    if result["returncode"] != 0:
        raise PixitError(f"pyannote.audio's SpeechSeparation failed on the benchmark meeting: "
                         f"{last_line(result['stderr'])[:300]}")
    return result


def compare_pyannote(args, base: Path) -> list[dict]:
    """Run both pipelines on a meeting per `args.duration`; print and return one row per duration."""
    from core.models import load_model
    from core.models.pyannote_export import export_pyannote, pyannote_python
    from core.pyannote_params import load_params

    limit = args.pyannote_up_to
    if any(d > limit for d in args.duration) and sum(d <= limit for d in args.duration) < 2:
        raise PixitError(f"--pyannote-up-to {limit:g}: pyannote must run on at least two of the durations to "
                         "extrapolate to the longer ones (add shorter --duration values or raise --pyannote-up-to)")
    python = pyannote_python()
    if python is None:
        raise PixitError("--compare pyannote needs pyannote.audio's environment: create .venv-pyannote "
                         "(bash .ci/setup) or set PIXIT_PYANNOTE_PYTHON to its interpreter")
    model = load_model(args.model)
    params = load_params(args.params)[0] if args.params else PipelineParams.for_model(args.model)
    if args.batch_size:
        params.batch_size = args.batch_size
    if params.embedding != "resemblyzer" or (args.embedding not in (None, "resemblyzer")):
        raise PixitError("--compare pyannote runs both pipelines with the resemblyzer embedding; "
                         "leave --embedding unset (or resemblyzer)")
    checkpoint = export_pyannote(model, base / "pyannote-model",
                                 relu_subclass=model.config.encoder_activation == "relu", duration=params.window)
    settings, notes = pyannote_settings(params)
    (base / "pyannote-settings.json").write_text(json.dumps(settings, indent=1))
    (base / "params.json").write_text(json.dumps(params.to_dict()))
    args.params = str(base / "params.json")  # pixit separate runs with exactly these parameters
    for note in notes:
        print(f"note: {note}", flush=True)
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    print(f"same weights, resemblyzer embedding and parameters; {threads} thread(s) each; step {params.step} s, "
          f"batch {params.batch_size}", flush=True)
    rows = []
    for duration in sorted(args.duration):
        wav, reference = _reference(duration, args.speakers, base)
        ours = measure(wav, base / "pixit", args, env=env)
        row = {"duration": duration, "pixit": _measured(ours, reference, base / "pixit" / f"{wav.stem}.rttm")}
        row["pixit"]["stages_s"] = {k: v for k, v in ours["timings"].items() if k != "total"}
        if duration <= limit:
            theirs = _run_pyannote(python, wav, checkpoint, base / "pyannote-settings.json", base / "pyannote", env)
            row["pyannote"] = _measured(theirs, reference, base / "pyannote" / f"{wav.stem}.rttm")
            _print_row(row)
        rows.append(row)
        wav.unlink()
    _extrapolate(rows)
    for row in rows:
        if row["pyannote"].get("extrapolated_from"):
            _print_row(row)
    return rows


def _measured(result: dict, reference: Path, rttm: Path) -> dict:
    return {"wall_s": result["wall"], "cpu_s": result["cpu"], "peak_rss_mb": result["peak_rss_mb"],
            "der": _der(reference, rttm)}


def _extrapolate(rows: list[dict]) -> None:
    """pyannote's wall / CPU time and peak memory on the meetings it was not run on, from a straight
    line through the ones it was (least squares over duration; its memory grows linearly)."""
    measured = [r for r in rows if "pyannote" in r]
    x = np.array([r["duration"] for r in measured], float)
    for row in rows:
        if "pyannote" not in row:
            row["pyannote"] = {"der": None, "extrapolated_from": [r["duration"] for r in measured]}
            for key in ("wall_s", "cpu_s", "peak_rss_mb"):
                slope, intercept = np.polyfit(x, [r["pyannote"][key] for r in measured], 1)
                row["pyannote"][key] = float(intercept + slope * row["duration"])
        row["ratio"] = _ratio(row)


def _ratio(row: dict) -> dict:
    return {k: row["pyannote"][k] / max(row["pixit"][k], 1e-9) for k in ("wall_s", "cpu_s", "peak_rss_mb")}


def _print_row(row: dict) -> None:
    ratio = _ratio(row)
    parts = []
    for name in ("pixit", "pyannote"):
        r = row[name]
        if r.get("extrapolated_from"):
            froms = ", ".join(f"{d / 60:g}" for d in r["extrapolated_from"])
            parts.append(f"pyannote (not run: extrapolated from {froms} min) wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, "
                         f"peak {r['peak_rss_mb']:.0f} MB")
        else:
            parts.append(f"{name} wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, peak {r['peak_rss_mb']:.0f} MB, "
                         f"DER {100 * r['der']:.1f} %")
    print(f"{row['duration'] / 60:6.1f} min: " + " | ".join(parts)
          + f" | pyannote / pixit: wall {ratio['wall_s']:.2f}x, CPU {ratio['cpu_s']:.2f}x, memory {ratio['peak_rss_mb']:.2f}x",
          flush=True)
    print("         pixit stages: " + " ".join(f"{k}={v:.1f}s" for k, v in row["pixit"]["stages_s"].items()), flush=True)
