"""Optional stage between binarisation and the sources: a voice activity detector corrects the
diarization (`vad: "silero"` in the pipeline parameters, `pixit separate --vad silero`).

Frames where the VAD hears speech but no speaker is active are given to the speaker with the
highest stitched activation there (missed speech becomes speech of the likeliest speaker); with
`vad_gate`, speaker frames where the VAD hears no speech are dropped too (false alarms). Applied
before the annotation is built, so leakage removal of the sources follows the corrected turns.
The VAD runs once per recording; its mask is kept on the ChunkOutputs, so tuning can re-run this
stage for free.
"""

from __future__ import annotations

import numpy as np

from core.pipeline.params import PipelineParams
from core.pipeline.windows import ChunkOutputs


def speech_frames(outputs: ChunkOutputs, num_frames: int, params: PipelineParams) -> np.ndarray:
    """(num_frames,) bool: the VAD's speech on the pipeline's frame grid (computed once per recording)."""
    from core import vad

    if outputs.speech is None or len(outputs.speech) < num_frames:
        waveform = outputs.waveform[: outputs.num_samples]
        outputs.speech = vad.speech_mask(waveform, num_frames, outputs.frame_step, outputs.frame_size,
                                         threshold=params.vad_threshold)
    return outputs.speech[:num_frames]


def apply_speech(binary: np.ndarray, activations: np.ndarray, speech: np.ndarray, gate: bool = False) -> np.ndarray:
    """Corrected (frames, speakers) binary diarization: speech frames without any active speaker go
    to the speaker with the highest activation (among those active somewhere); with `gate`, frames
    without speech lose every speaker."""
    out = binary.copy()
    alive = out.any(axis=0)
    if not alive.any():
        return out
    missed = speech & ~out.any(axis=1)
    if missed.any():
        scores = np.where(alive[None, :], activations[missed], -np.inf)
        out[np.flatnonzero(missed), np.argmax(scores, axis=1)] = True
    if gate:
        out[~speech] = False
    return out
