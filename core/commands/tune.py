"""`pixit tune`: search theta (activation threshold), delta (clustering threshold),
min_duration_off (total DER on the dev set), optionally the sliding step (`--steps`), and the leakage collar (mean SI-SDR against the
ground-truth sources, when the dev set has them); writes a PipelineParams JSON that `pixit
separate --params` and the app load. The model runs once per dev file; see core/tuning.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.commands._args import MODEL_HELP, PARAMS_HELP, bounded_float, float_list, load_pipeline_params, positive_int
from core.errors import PixitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dev", required=True, metavar="MANIFEST", help="dev manifest (CSV audio,rttm,uem[,sources] or a folder)")
    parser.add_argument("--model", default="default", metavar="M", help=MODEL_HELP)
    parser.add_argument("--out", required=True, metavar="PARAMS.json", help="where to write the tuned parameters")
    parser.add_argument("--params", metavar="P", help=f"starting parameters (window, step, embedding ...; default: the model's params.json, as `separate`): {PARAMS_HELP}")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="windows per forward pass")
    parser.add_argument("--embedding", metavar="NAME", help="speaker embedding: resemblyzer, speechbrain-ecapa[:DIR], mfcc")
    parser.add_argument("--thresholds", type=float_list(0, 1, low_open=True, high_open=True), metavar="LIST", help="theta values in (0, 1), comma-separated (default 0.3,...,0.7)")
    parser.add_argument("--clustering-thresholds", type=float_list(0, 2), metavar="LIST", help="delta values in [0, 2], comma-separated (default 0.3,...,1.4)")
    parser.add_argument("--vad-options", default="", metavar="LIST",
                        help="VAD stages to try on the best settings, comma-separated: none, silero, silero+gate "
                             "(default: keep the starting parameters' vad)")
    parser.add_argument("--steps", type=float_list(0, 30, low_open=True), metavar="LIST",
                        help="sliding steps in s to try besides the starting one, comma-separated (e.g. 1,1.5,2): each "
                             "gets its own search and the largest whose DER is within --max-der-increase of the best is "
                             "kept (fewer windows: less model time)")
    parser.add_argument("--max-der-increase", type=bounded_float(0, 100), default=1.0, metavar="POINTS",
                        help="DER points a larger step may lose against the best step and still be kept (default 1)")
    parser.add_argument("--collars", type=float_list(0, 30), metavar="LIST", help="leakage collars in s (0 to 30), comma-separated (default 0,0.1,0.25,0.5,1,2)")


def run(args) -> int:
    from core.pipeline import PipelineParams
    from core.tuning import DEFAULT_CLUSTERING, DEFAULT_COLLARS, DEFAULT_MIN_OFF, DEFAULT_THRESHOLDS, tune

    thresholds = args.thresholds or DEFAULT_THRESHOLDS
    deltas = args.clustering_thresholds or DEFAULT_CLUSTERING
    collars = args.collars or DEFAULT_COLLARS
    params = load_pipeline_params(args.params, "tune") if args.params else PipelineParams.for_model(args.model)
    if args.batch_size is not None:
        params.batch_size = args.batch_size
    if args.embedding:
        params.embedding = args.embedding
    vad_options = tuple(x.strip() for x in args.vad_options.split(",") if x.strip())
    unknown = [x for x in vad_options if x not in ("none", "silero", "silero+gate")]
    if unknown:
        raise PixitError(f"--vad-options: unknown option {unknown[0]!r} (none, silero, silero+gate)")
    if any(x != "none" for x in vad_options):
        from core import vad

        if not vad.available():
            raise PixitError("--vad-options silero needs the silero-vad package (pip install silero-vad)")
    out = Path(args.out)
    if out.is_dir():
        raise PixitError(f"--out {out} is a folder; give a .json file name")
    last = [-1.0]

    def progress(fraction, message):
        if fraction - last[0] >= 0.05 or fraction >= 1.0:
            last[0] = fraction
            print(f"{fraction:4.0%} {message}", flush=True)

    result = tune(args.dev, args.model, params, device=args.device, thresholds=thresholds,
                  clustering_thresholds=deltas, min_durations_off=DEFAULT_MIN_OFF, collars=collars, vad_options=vad_options,
                  steps=args.steps or (), max_der_increase=args.max_der_increase / 100, progress=progress)
    result.save(out)
    p = result.params
    print(f"DER {100 * result.baseline_der:.2f}% -> {100 * result.der:.2f}% with step={p.step:g} threshold={p.threshold:g} "
          f"clustering_threshold={p.clustering_threshold:g} min_duration_off={p.min_duration_off:g} "
          f"leakage_collar={p.leakage_collar:g} vad={p.vad}{'+gate' if p.vad_gate else ''}", flush=True)
    for note in result.notes:
        print(f"note: {note}", flush=True)
    print(f"wrote {out}", flush=True)
    return 0
