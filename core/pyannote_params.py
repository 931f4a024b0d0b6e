"""Pipeline settings by name: what `--params` accepts (`pixit separate`, `tune`, `app`).

`load_params(source) -> (PipelineParams, notes)` reads
- a params.json written by `pixit tune` (or any JSON object of PipelineParams fields);
- a pyannote.audio pipeline `config.yaml` (SpeechSeparation, or SpeakerDiarization), mapped onto
  this project's parameters by `params_from_pyannote`;
- a folder holding either, or a Hugging Face Hub id `org/name[@revision]` of a repo holding either
  (`pyannote/speech-separation-ami-1.0`), fetched through core.hub.

`notes` says, one line each, which pyannote settings have no counterpart here (and what was kept
instead), so that nothing is dropped silently. The mapping:

    pipeline.params.segmentation_step (ratio of the window) -> step = ratio x window (5 s)
    pipeline.params.segmentation_batch_size                 -> batch_size
    pipeline.params.embedding speechbrain/spkrec-ecapa-*    -> embedding (the same model, by hub id)
    params.segmentation.threshold                           -> threshold
    params.segmentation.min_duration_off                    -> min_duration_off
    params.clustering.method / threshold / min_cluster_size -> clustering_method / clustering_threshold /
                                                               min_cluster_size (same scale: distances
                                                               between unit-normalised embeddings)
    params.separation.asr_collar                            -> leakage_collar

No counterpart: other embedding models (their clustering threshold does not carry over to this
project's embedding), embedding_batch_size, embedding_exclude_overlap False (local speakers are
always embedded where they speak alone), clustering other than AgglomerativeClustering,
leakage_removal False (leakage removal is always on), der_variant (a tuning metric), and the
pipeline's model, which `--model` names.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import PixitError
from core.pipeline import PipelineParams

__all__ = ["load_params", "params_from_pyannote", "PYANNOTE_CONFIG_NAME"]

PYANNOTE_CONFIG_NAME = "config.yaml"  # pyannote.audio's name for a pipeline's settings
PARAMS_JSON = "params.json"
_PIPELINES = ("SpeechSeparation", "SpeakerDiarization")
_HYPER = {  # (section, key) -> PipelineParams field
    ("segmentation", "threshold"): "threshold",
    ("segmentation", "min_duration_off"): "min_duration_off",
    ("clustering", "method"): "clustering_method",
    ("clustering", "threshold"): "clustering_threshold",
    ("clustering", "min_cluster_size"): "min_cluster_size",
    ("separation", "asr_collar"): "leakage_collar",
}


def _embedding(name: str, notes: list[str]) -> str | None:
    """This project's embedding for pyannote's `embedding` setting, None when it has none."""
    from core.hub import parse_hub_id

    hub_id = parse_hub_id(str(name))
    if hub_id is not None and hub_id[0].startswith("speechbrain/spkrec-ecapa"):
        return str(name)  # the same SpeechBrain ECAPA-TDNN, through core.embeddings' hub loader
    notes.append(f"embedding {name} has no counterpart here: keeping {PipelineParams().embedding}, for which the "
                 "clustering threshold tuned with it is not calibrated (tune it: pixit tune)")
    return None


def params_from_pyannote(config: dict, name: str = "config.yaml") -> tuple[PipelineParams, list[str]]:
    """This project's parameters for a pyannote.audio pipeline configuration (the parsed config.yaml)."""
    if not isinstance(config, dict) or not isinstance(config.get("pipeline"), dict):
        raise PixitError(f"{name}: not a pyannote.audio pipeline configuration (no 'pipeline' section)")
    pipeline = str(config["pipeline"].get("name", ""))
    if not pipeline.endswith(_PIPELINES):
        raise PixitError(f"{name}: pyannote pipeline {pipeline or '(unnamed)'} is not one of {', '.join(_PIPELINES)}")
    base = PipelineParams()
    fields, notes = {}, []
    init = dict(config["pipeline"].get("params") or {})
    if "segmentation" in init:
        notes.append(f"the pipeline runs the model {init.pop('segmentation')}: name it with --model")
    if "segmentation_step" in init:
        fields["step"] = round(float(init.pop("segmentation_step")) * base.window, 6)
    if "segmentation_batch_size" in init:
        fields["batch_size"] = int(init.pop("segmentation_batch_size"))
    if "embedding" in init:
        embedding = _embedding(init.pop("embedding"), notes)
        if embedding is not None:
            fields["embedding"] = embedding
    if not init.pop("embedding_exclude_overlap", True):
        notes.append("embedding_exclude_overlap false has no counterpart: local speakers are always embedded where "
                     "they speak alone")
    clustering = init.pop("clustering", "AgglomerativeClustering")
    if clustering != "AgglomerativeClustering":
        notes.append(f"clustering {clustering} has no counterpart: agglomerative clustering is used")
    for key in sorted(init):
        if key not in ("token", "cache_dir"):
            notes.append(f"pipeline setting {key} has no counterpart (ignored)")

    hyper: dict = {}
    for section_name in ("params", "freeze"):  # frozen parameters are parameters too
        for section, values in (config.get(section_name) or {}).items():
            hyper.setdefault(section, {}).update(values if isinstance(values, dict) else {})
    for section, values in hyper.items():
        for key, value in values.items():
            target = _HYPER.get((section, key))
            if target is not None:
                fields[target] = value
            elif (section, key) == ("separation", "leakage_removal"):
                if not value:
                    notes.append("leakage_removal false has no counterpart: leakage removal is always on "
                                 f"(leakage_collar {fields.get('leakage_collar', base.leakage_collar)} s)")
            else:
                notes.append(f"{section}.{key} has no counterpart (ignored)")
    for key in sorted(set(config) - {"pipeline", "params", "freeze", "version", "dependencies"}):
        notes.append(f"section {key} has no counterpart (ignored)")
    try:
        return PipelineParams(**{**base.to_dict(), **fields}), notes
    except (TypeError, ValueError) as exc:
        raise PixitError(f"{name}: {exc}") from None


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PixitError(f"{path.name}: not a readable YAML file ({str(exc).splitlines()[0]})") from None


def _from_file(path: Path) -> tuple[PipelineParams, list[str]]:
    if path.suffix in (".yaml", ".yml"):
        return params_from_pyannote(_read_yaml(path), path.name)
    return PipelineParams.load(path), []


def load_params(source: str | Path) -> tuple[PipelineParams, list[str]]:
    """Pipeline parameters and notes for `source` (see module docstring); one-line PixitError otherwise."""
    from core import hub

    path = Path(source).expanduser()
    if path.is_file():
        return _from_file(path)
    if path.is_dir():
        for name in (PARAMS_JSON, PYANNOTE_CONFIG_NAME):
            if (path / name).is_file():
                return _from_file(path / name)
        raise PixitError(f"{path}: no {PARAMS_JSON} or {PYANNOTE_CONFIG_NAME} in this folder")
    hub_id = hub.parse_hub_id(str(source))
    if hub_id is None:
        raise PixitError(f"{source}: no such parameter file, folder or hub id (org/name[@revision])")
    for name in (PARAMS_JSON, PYANNOTE_CONFIG_NAME):
        found = hub.download_optional(hub_id[0], name, hub_id[1])
        if found is not None:
            return _from_file(found)
    raise PixitError(f"{source}: the repo holds neither {PARAMS_JSON} nor a pyannote {PYANNOTE_CONFIG_NAME}")
