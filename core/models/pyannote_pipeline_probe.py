"""Run pyannote.audio's SpeechSeparation pipeline on one recording, in pyannote.audio's own environment.

    python -c "$(cat pyannote_pipeline_probe.py)" AUDIO.wav CHECKPOINT SETTINGS.json OUT_DIR

`pixit bench --compare pyannote` runs it in a fresh process beside `pixit separate`, so both are
measured the same way. SETTINGS.json holds the pipeline's constructor arguments (`init`), its
hyper-parameters (`params`, as `Pipeline.instantiate` takes them) and the embedding (`embedding`:
"resemblyzer" and `min_duration`). The embedding is this project's resemblyzer encoder
(`core.embeddings`), put in place of pyannote's pretrained-embedding factory, so that both pipelines
embed with the same network. OUT_DIR gets `AUDIO-stem.rttm` and one WAV per separated source, the
outputs `pixit separate` writes too.
"""

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from pyannote.audio.pipelines import speech_separation


class ResemblyzerEmbedding:
    """The interface pyannote's pipelines call (`embedding(waveforms, masks)` -> (B, D) numpy), on the
    project's resemblyzer encoder: each waveform keeps the samples its mask marks as active, as
    pyannote's SpeechBrain wrapper does; too little speech gives NaN, which pyannote skips."""

    sample_rate = 16000
    dimension = 256
    metric = "cosine"

    def __init__(self, min_duration: float):
        from core.embeddings import get_encoder

        self._encoder = get_encoder("resemblyzer")
        self.min_num_samples = int(min_duration * self.sample_rate)

    def to(self, device):  # pyannote moves its models; this one stays on the CPU
        return self

    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        signals = waveforms[:, 0].numpy()
        if masks is None:
            keep = np.ones(signals.shape, bool)
        else:
            # nearest-frame upsampling of the (B, F) frame masks to samples
            frames = masks.numpy()
            index = np.minimum((np.arange(signals.shape[1]) * frames.shape[1]) // signals.shape[1], frames.shape[1] - 1)
            keep = frames[:, index] > 0.5
        out = np.full((len(signals), self.dimension), np.nan, np.float32)
        chosen = [i for i in range(len(signals)) if keep[i].sum() >= self.min_num_samples]
        if chosen:
            out[chosen] = self._encoder([signals[i][keep[i]] for i in chosen])
        return out


def main(audio: str, checkpoint: str, settings_path: str, out_dir: str) -> None:
    settings = json.loads(Path(settings_path).read_text())
    embedding = ResemblyzerEmbedding(settings["embedding"]["min_duration"])
    speech_separation.PretrainedSpeakerEmbedding = lambda *args, **kwargs: embedding
    pipeline = speech_separation.SpeechSeparation(segmentation=checkpoint, embedding="resemblyzer", **settings["init"])
    pipeline.instantiate(settings["params"])
    samples, sample_rate = sf.read(audio, dtype="float32")
    waveform = torch.from_numpy(samples).unsqueeze(0)
    with torch.inference_mode():
        diarization, sources = pipeline({"waveform": waveform, "sample_rate": sample_rate, "uri": Path(audio).stem})
    out = Path(out_dir)
    with open(out / f"{Path(audio).stem}.rttm", "w") as f:
        diarization.write_rttm(f)
    for k, label in enumerate(diarization.labels()):
        sf.write(out / f"{Path(audio).stem}_{label}.wav", sources.data[:, k], sample_rate)


if __name__ == "__main__":
    main(*sys.argv[1:])
