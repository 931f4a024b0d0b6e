"""Pipeline parameters: one JSON-serialisable dataclass, validated when it is built.

`pixit tune` writes them into a model's folder (params.json); the CLI, the app and the tuning grid
load them from there, so a bad value fails with a one-line error when loaded, not mid-recording.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from core.errors import PixitError

PARAMS_NAME = "params.json"  # pipeline parameters tuned for a model, stored in its folder


@dataclass
class PipelineParams:
    """Inference settings; JSON-serialisable (`pixit tune` writes them, the app and CLI load them)."""

    window: float = 5.0                  # chunk duration (s)
    step: float = 0.5                    # step between chunks (s)
    threshold: float = 0.5               # theta: activation threshold
    clustering_threshold: float = 0.6    # delta (Euclidean distance between unit embeddings, 0..2)
    leakage_collar: float = 0.5          # Delta t (s): keep a source this long around its speech
    min_duration_off: float = 0.0        # fill pauses shorter than this (s)
    min_duration_on: float = 0.0         # drop speech turns shorter than this (s)
    batch_size: int = 32                 # chunks per model forward
    embedding: str = "resemblyzer"       # speaker-embedding back end (core.embeddings)
    clustering_method: str = "centroid"  # scipy linkage method
    min_cluster_size: int = 3            # smaller clusters are merged into the nearest large one
    min_embedding_duration: float = 0.5  # s of single-speaker speech needed to embed a local speaker
    separation_step: float | None = None  # step of the chunks used for the sources (None: window/2)
    source_cache_minutes: float = 20.0   # longer recordings recompute the separation chunks (memory)
    vad: str = "none"                    # "silero": missed speech goes to the likeliest speaker (core.pipeline.speech)
    vad_threshold: float = 0.5           # Silero speech probability threshold
    vad_gate: bool = False               # also drop speaker turns where the VAD hears no speech

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def positive(name, value, allow_zero=False):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
                raise PixitError(f"pipeline parameter {name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")

        positive("window", self.window)
        positive("step", self.step)
        if self.step > self.window:
            raise PixitError(f"pipeline parameter step ({self.step}) must not exceed window ({self.window})")
        if not isinstance(self.threshold, (int, float)) or not 0 < self.threshold < 1:
            raise PixitError(f"pipeline parameter threshold must be in (0, 1), got {self.threshold!r}")
        positive("clustering_threshold", self.clustering_threshold, allow_zero=True)
        for name in ("leakage_collar", "min_duration_off", "min_duration_on", "min_embedding_duration",
                     "source_cache_minutes"):
            positive(name, getattr(self, name), allow_zero=True)
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise PixitError(f"pipeline parameter batch_size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.min_cluster_size, int) or self.min_cluster_size < 1:
            raise PixitError(f"pipeline parameter min_cluster_size must be a positive integer, got {self.min_cluster_size!r}")
        if self.separation_step is not None:
            positive("separation_step", self.separation_step)
        if self.vad not in ("none", "silero"):
            raise PixitError(f"pipeline parameter vad must be 'none' or 'silero', got {self.vad!r}")
        if not isinstance(self.vad_threshold, (int, float)) or not 0 < self.vad_threshold < 1:
            raise PixitError(f"pipeline parameter vad_threshold must be in (0, 1), got {self.vad_threshold!r}")
        if not isinstance(self.embedding, str) or not self.embedding:
            raise PixitError(f"pipeline parameter embedding must be a name, got {self.embedding!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PipelineParams":
        if not isinstance(data, dict):
            raise PixitError("pipeline parameters must be a JSON object")
        data = dict(data.get("params", data)) if isinstance(data.get("params"), dict) else dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"format", "version", "metrics"})
        if unknown:
            raise PixitError(f"unknown pipeline parameter(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        from core.fileio import atomic_write_json

        atomic_write_json(path, {"format": "pixit-pipeline-params", "version": 1, **self.to_dict(), **(extra or {})})

    @classmethod
    def for_model(cls, model) -> "PipelineParams":
        """The parameters tuned for a model: its folder's params.json when there is one, else the defaults."""
        if isinstance(model, (str, Path)):
            from core.models.resolve import resolve_model

            path = resolve_model(model).params_path
            if path is not None:
                return cls.load(path)
        return cls()

    @classmethod
    def load(cls, path: str | Path) -> "PipelineParams":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PixitError(f"{path}: no such parameter file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PixitError(f"{path.name}: not a valid JSON parameter file ({str(exc).splitlines()[0]})") from None
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise PixitError(f"{path.name}: {exc}") from None
        except PixitError as exc:
            raise PixitError(f"{path.name}: {exc}") from None


def copy_tuned_params(source_model, model_dir: str | Path) -> None:
    """A model derived from another (fine-tuned, pruned) keeps the pipeline parameters tuned for it."""
    if source_model is None or not (Path(model_dir) / "config.json").is_file():
        return
    from core.fileio import atomic_write_text
    from core.models.resolve import resolve_model

    source = resolve_model(source_model).params_path
    if source is not None:
        atomic_write_text(Path(model_dir) / PARAMS_NAME, source.read_text(encoding="utf-8"))
