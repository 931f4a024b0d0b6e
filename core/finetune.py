"""Fine-tuning a model on a user's corrections: the defaults, the replay data and the whole recipe.

`finetune(init, train, out)` is what the app's Retrain button and `pixit train --init M` run, with
the same `FinetuneSettings`. Corrected data is small (one meeting, minutes), so unlike training from
scratch: a fixed number of steps with validation every `val_every` steps on a few fixed pairs (not
"epochs" of a short region), a short warm-up, only the late parts of the network learn (see
ToTaToNet.set_trainable), a share of every batch replays meetings like the model's original
training data (synthesised once and cached) so that it does not forget, the best checkpoint by
validation loss is kept, and each corrected speaker gets a profile (core.speakers: the next
meetings name them). On request (retune) the pipeline's thresholds are re-tuned on the corrected data
into the new model's params.json; by default the model's own are kept (measured: re-tuning on the
data the model was just trained on made the next meeting worse). Whether the new model may replace the old one is core.adoption's
decision.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from core.data import Recording, check_audio, read_manifest
from core.errors import PixitError

Progress = Callable[[float, str], None]

REPLAY_VERSION = 1  # bump when the replay recipe below changes (a new cache folder)


@dataclass
class FinetuneSettings:
    """Defaults for a few minutes of corrections on 2 CPU cores (chosen in tests/bench_retrain.py)."""

    steps: int | None = 60  # None: by epochs (TrainConfig.epochs)
    lr: float = 1e-4
    warmup_steps: int = 5
    batch_size: int = 4
    chunk_duration: float = 5.0
    val_every: int = 15
    val_pairs: int = 16
    update: str = "late"
    replay_fraction: float = 0.5
    lambda_: float = 0.5
    retune: bool = False  # re-tuning on the corrected data made the next meeting worse (README)

    def train_config(self, **overrides):
        """The core.training.TrainConfig of these settings (`overrides`: other TrainConfig fields)."""
        from core.training import TrainConfig

        mine = asdict(self)
        return TrainConfig(max_steps=mine.pop("steps"), **{k: v for k, v in mine.items() if k != "retune"},
                           **overrides)


def replay_data(cache_dir: str | os.PathLike | None = None, progress: Progress | None = None) -> list[Recording]:
    """Meetings like the shipped model's training data (natural-voice synthesis, the training voice set,
    varied acoustics): 4 x 60 s, made once per machine (~1 minute) and cached."""
    from core.synth import make_corpus
    from core.synth.voices import base_voices, parse_engines

    root = Path(cache_dir or os.environ.get("PIXIT_CACHE") or Path.home() / ".cache" / "pixit")
    folder = root / f"replay-v{REPLAY_VERSION}"
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        engines = tuple(e for e in parse_engines("auto") if e in ("espeak", "flite", "festival")) or ("espeak",)
        engines = tuple(e for e in engines if base_voices((e,), "train"))
        if progress is not None:
            progress(0.0, "making replay meetings (once per machine)")
        make_corpus(folder, 4, 60.0, speakers=(2, 4), seed=12, prefix="replay", write_sources=False,
                    real_voices=False, engines=engines, voice_set="train", acoustics="varied")
    return read_manifest(manifest)


def check_corrections(recordings: list[Recording], chunk_duration: float) -> None:
    """Refuse corrections that cannot teach anything, with a one-line reason."""
    annotated = sum(r.annotated_duration for r in recordings)
    if annotated < chunk_duration:
        raise PixitError(f"the corrected region is {annotated:.1f} s: at least {chunk_duration:g} s (one training "
                         f"chunk) is needed; review more of the meeting")
    speakers = {label for r in recordings for label in r.labels}
    if len(speakers) < 2:
        raise PixitError("the corrected region has only one speaker: the model learns to tell speakers apart "
                         "from regions where at least two speak")


def retune(model_dir: Path, data: list[Recording], base_params, progress: Progress | None = None,
           should_stop=None) -> dict:
    """Re-tune the binarisation threshold and the shortest pause on the corrected data; the best go into
    model_dir/params.json. The clustering threshold is kept: tuned on the data the model was just trained
    on, it moved the clustering of the next meeting by up to 17 points of confusion (README)."""
    from core.tuning import tune

    t = base_params
    result = tune(data, model=str(model_dir), params=t, device="cpu",
                  thresholds=sorted({0.4, 0.5, 0.6, t.threshold}), clustering_thresholds=(t.clustering_threshold,),
                  min_durations_off=sorted({0.0, 0.1, 0.25, t.min_duration_off}), collars=(t.leakage_collar,),
                  progress=progress, should_stop=should_stop)
    result.save(model_dir / "params.json")
    return result.params.to_dict()


@dataclass
class FinetuneResult:
    model_dir: Path
    steps: int
    best_step: int
    seconds: float
    params: dict | None  # the re-tuned pipeline settings (None: not re-tuned)
    speakers: list[str]  # the known speakers stored with the model (core.speakers)


def finetune(init: str | os.PathLike, train_data, out_dir: str | os.PathLike, dev_data=None,
             settings: FinetuneSettings | None = None, progress: Progress | None = None, should_stop=None,
             replay_cache: str | os.PathLike | None = None, **train_overrides) -> FinetuneResult:
    """Fine-tune `init` on corrected recordings (a manifest or Recordings); writes out_dir/model with
    its re-tuned params.json. `dev_data`: validation recordings (default: fixed pairs of the training
    data). Progress runs 0-0.05 replay data, 0.05-0.85 training, 0.85-1 re-tuning."""
    from core.pipeline.params import PipelineParams
    from core.training import read_recordings, train

    s = settings or FinetuneSettings()
    report = progress or (lambda f, m: None)
    started = time.perf_counter()
    train_recs = read_recordings(train_data, "training data")
    check_corrections(train_recs, s.chunk_duration)
    check_audio(train_recs, "training data")  # before the replay data is made (train() checks the rest)
    replay = replay_data(replay_cache, lambda f, m: report(0.05 * f, m)) if s.replay_fraction > 0 else None
    result = train(train_recs, out_dir, dev_manifest=dev_data, init=init, config=s.train_config(**train_overrides),
                   replay=replay, progress=lambda f, m: report(0.05 + 0.8 * f, m), should_stop=should_stop)
    report(0.85, "making the known speakers' profiles")
    base = PipelineParams.for_model(result.model_dir)
    profiles = known_speakers(result.model_dir, train_recs, base)
    params = None
    if s.retune:
        report(0.85, "re-tuning the pipeline settings on the corrected data")
        params = retune(result.model_dir, train_recs, base, lambda f, m: report(0.85 + 0.15 * f, m), should_stop)
    report(1.0, f"fine-tuned in {time.perf_counter() - started:.0f} s")
    return FinetuneResult(result.model_dir, result.steps, result.best_step, time.perf_counter() - started, params,
                          profiles.names if profiles else [])


def known_speakers(model_dir: Path, data: list[Recording], params):
    """The corrected speakers' profiles (core.speakers) into model_dir/speakers.json: the new model
    names them in the next meetings. None (and no file) when nobody talks alone long enough."""
    from core.embeddings import get_encoder
    from core.speakers import PROFILE_FILE, build_profiles

    try:
        profiles = build_profiles(data, get_encoder(params.embedding, "cpu"), params.embedding)
    except PixitError:
        return None
    profiles.save(Path(model_dir) / PROFILE_FILE)
    return profiles
