"""Sharing a model on the Hugging Face Hub: a generated model card and the upload (`pixit push`, the
app's "Share on the Hub").

`model_card(model, ...)` writes README.md the way the Hub reads it: YAML metadata (licence, tags,
`base_model` when the parent is a hub repo; built with huggingface_hub's ModelCardData) and a body
saying what the model is (architecture, size), what it was trained on (the recordings of the run,
by file name only: local paths are never published), from which parent, and how well it did (the
run's best validation row of metrics.csv, the tuned pipeline DER of params.json). It reads what
training leaves next to a model: `RUN/model/` is the model, `RUN/train.json` and `RUN/metrics.csv`
its run (`pixit train` and the app's Retrain both write them). A MODEL_CARD.md in the model folder
(the shipped default model has one) is appended.

`push_model(model, repo_id, private=...)` stages exactly the files to publish (config.json,
model.safetensors, params.json, README.md; optionally pyannote's pytorch_model.bin, so that the same
repo loads in pyannote.audio too) and uploads them with core.hub.upload_folder.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import tempfile
from pathlib import Path

from core.errors import PixitError
from core.models.resolve import PARAMS_NAME, ModelSource, load_model, resolve_model
from core.models.totatonet import CONFIG_NAME, WEIGHTS_NAME, ToTaToNet, count_parameters

__all__ = ["model_card", "stage_model", "push_model", "CARD_NAME"]

CARD_NAME = "README.md"
_TAGS = ["pixit", "totatonet", "speaker-diarization", "speech-separation", "audio"]


def _run_folder(source: ModelSource) -> Path | None:
    """RUN/ for a model at RUN/model/ (where pixit train / the app's Retrain put it)."""
    run = source.path.parent
    return run if source.kind == "pixit" and (run / "train.json").is_file() else None


def _best_validation(metrics: Path) -> dict | None:
    try:
        with metrics.open(newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle) if r.get("val_loss") not in (None, "")]
    except OSError:
        return None
    finite = [r for r in rows if math.isfinite(float(r["val_loss"]))]
    return min(finite, key=lambda r: float(r["val_loss"])) if finite else None


def _fmt(value, percent: bool = False) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{100 * v:.1f} %" if percent else f"{v:.3g}"


def _architecture(net: ToTaToNet) -> str:
    c = net.config
    ssl = "no SSL front end"
    if net.ssl is not None:
        cfg = net.ssl.config_dict()
        ssl = f"SSL front end {cfg.get('name_or_path') or net.ssl.model_type} ({cfg.get('layers')} layers, {net.ssl.model_type})"
    return (f"ToTaToNet: learned encoder/decoder ({c.n_filters} filters, kernel {c.kernel_size}, stride {c.stride}), "
            f"{c.masker} masker, {c.n_sources} sources, diarization head per source ({c.diar_layers} x {c.diar_hidden}), "
            f"{ssl}, encoder activation {c.encoder_activation}; {count_parameters(net):,} parameters")


def _public_name(model: str | None) -> str | None:
    """A model name fit for a public card: a hub id as it is, a local model by its folder name only."""
    from core.hub import parse_hub_id

    if not model:
        return None
    if model == "default":
        return "the shipped default model of PixIT Workbench"
    if parse_hub_id(model) is not None and not Path(model).exists():
        return model
    return f"a local model ({Path(model).name})"


def model_card(model: str | Path | ModelSource, license: str = "other", parent: str | None = None,
               notes: list[str] | None = None, title: str | None = None, net: ToTaToNet | None = None) -> str:
    """README.md text for `model` (see module docstring). `parent` overrides the run's init model; `net`
    is the loaded model when the caller has it."""
    from huggingface_hub import ModelCardData

    from core.hub import parse_hub_id

    source = model if isinstance(model, ModelSource) else resolve_model(model)
    net = net if net is not None else load_model(source.path)
    run = _run_folder(source)
    train = json.loads((run / "train.json").read_text(encoding="utf-8")) if run else {}
    parent = parent or train.get("init")
    base = parent if parent and parse_hub_id(parent) and not Path(parent).exists() else None
    parent = _public_name(parent)
    data = ModelCardData(license=license, library_name="pixit-workbench", tags=_TAGS, base_model=base)

    lines = [f"# {title or source.repo_id or Path(str(source.name)).name}", "",
             "A joint speaker diarization + speech separation model (ToTaToNet, trained with PixIT, Kalda et al. "
             "2024), made with PixIT Workbench: `pixit separate AUDIO --model ORG/NAME` loads it by name.", "",
             "## Model", "", _architecture(net), ""]
    lines += ["## Training", ""]
    if train:
        recordings = [Path(p).name for p in train.get("train") or []]
        dev = [Path(p).name for p in train.get("dev") or []]
        config = train.get("config") or {}
        lines += [f"- parent model: {parent or 'none (trained from scratch)'}",
                  f"- data: {len(recordings)} training recording(s)" + (f" ({', '.join(recordings[:10])}"
                                                                           f"{' ...' if len(recordings) > 10 else ''})" if recordings else ""),
                  f"- validation: {len(dev)} recording(s)" if dev else "- validation: held out from the training recordings",
                  f"- {train.get('steps', '?')} steps (best validation loss at step {train.get('best_step', '?')}), "
                  f"lambda {config.get('lambda_', '?')}, lr {config.get('lr', '?')}, status {train.get('status', '?')}"]
    else:
        lines.append(f"- parent model: {parent or 'not recorded'}; no training record next to this model folder")
    lines += [f"- {note}" for note in notes or []]
    lines += ["", "## Metrics", ""]
    best = _best_validation(run / "metrics.csv") if run else None
    if best:
        lines += ["Best validation row of the training run (fixed validation pairs; DER on the model's chunks):", "",
                  "| step | val loss | DER | false alarm | missed | confusion | MoM SI-SDRi (dB) |", "|---|---|---|---|---|---|---|",
                  f"| {best.get('step')} | {_fmt(best.get('val_loss'))} | {_fmt(best.get('val_der'), True)} | "
                  f"{_fmt(best.get('val_false_alarm'), True)} | {_fmt(best.get('val_missed'), True)} | "
                  f"{_fmt(best.get('val_confusion'), True)} | {_fmt(best.get('val_mom_sisdri'))} |", ""]
    tuned = source.params_path
    tuned_metrics = json.loads(tuned.read_text(encoding="utf-8")).get("metrics") if tuned else None
    if isinstance(tuned_metrics, dict) and "der" in tuned_metrics:
        lines += [f"Pipeline DER with the tuned parameters of `{PARAMS_NAME}` on the tuning set: "
                  f"{_fmt(tuned_metrics['der'], True)}.", ""]
    if not best and not tuned_metrics:
        lines += ["No metrics were recorded with this model.", ""]
    lines += ["## Licence", "", f"`{license}`" + (" (not stated by the uploader)" if license == "other" else ""), ""]
    extra = source.path / "MODEL_CARD.md" if source.kind == "pixit" else None
    if extra is not None and extra.is_file():
        notes_text = extra.read_text(encoding="utf-8").strip().splitlines()  # its headings one level down
        lines += ["## Notes from the model folder", "", *(("##" + line) if line.startswith("#") else line for line in notes_text), ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)


def stage_model(model: str | Path, folder: str | Path, repo_id: str, license: str = "other", parent: str | None = None,
                notes: list[str] | None = None, with_pyannote: bool = False) -> Path:
    """Write into `folder` exactly the files `push_model` uploads for `model` (see module docstring)."""
    from core import hub

    if hub.parse_hub_id(repo_id) is None or "@" in repo_id:
        raise PixitError(f"{repo_id!r} is not a Hugging Face repo id (expected org/name)")
    source = resolve_model(model)
    stage = Path(folder)
    if stage.exists() and any(stage.iterdir()):
        raise PixitError(f"{stage} is not empty")
    net = load_model(source.path)
    if with_pyannote:
        from core.models.pyannote_export import check_exportable, export_pyannote

        check_exportable(net)  # before anything is written
    card = model_card(source, license=license, parent=parent, notes=notes, title=repo_id, net=net)
    stage.mkdir(parents=True, exist_ok=True)
    if source.kind == "pixit":
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copyfile(source.path / name, stage / name)
    else:  # a pyannote checkpoint is published in this project's format
        net.save(stage)
    if source.params_path is not None:
        shutil.copyfile(source.params_path, stage / PARAMS_NAME)
    (stage / CARD_NAME).write_text(card, encoding="utf-8")
    if with_pyannote:
        export_pyannote(net, stage)
    return stage


def push_model(model: str | Path, repo_id: str, private: bool = False, license: str = "other", parent: str | None = None,
               notes: list[str] | None = None, with_pyannote: bool = False) -> str:
    """Upload `model` (anything resolve_model accepts) to `repo_id` with a generated model card; the commit URL."""
    from core import hub

    with tempfile.TemporaryDirectory(prefix="pixit-push-") as tmp:
        stage = stage_model(model, Path(tmp) / "repo", repo_id, license=license, parent=parent, notes=notes,
                            with_pyannote=with_pyannote)
        return hub.upload_folder(stage, repo_id, private=private, commit_message=f"Upload {Path(str(model)).name} (PixIT Workbench)")
