"""Long-form joint diarization + separation (PixIT paper, section 2.2), in bounded memory.

One module per stage, in the order they run (each stage a public function, so `core.tuning` can
re-run the cheap ones); `params.py` holds the settings, `result.py` what a run returns and how it
is saved, `runner.py` the `Pipeline` class that runs the stages in order:

1. `windows.run_model`: 5 s windows every 0.5 s (configurable), batched, `torch.inference_mode`.
   Keeps the frame-level activations of every chunk (C x K x F float32: about 54 MB per hour) and
   the sources of the *separation chunks* only: every m-th chunk, m = separation_step / step
   (default: half a window, i.e. 50 % overlap, research notes section 9.5), cached as float16
   with a per-source scale, i.e. about 2 x K_max x 2 bytes per sample (0.7 GB per hour at K_max=3).
   Recordings longer than `source_cache_minutes` (default 20) keep no sources at all: the model
   is run again on the separation chunks, in batches, while they are stitched (stage 5), which
   costs (step / separation step) more model time (+20 % at 0.5 s steps, +40 % at 1 s) and saves
   the cache. Nothing of size chunks x window x speakers at the diarization step is ever kept,
   and there are no float64 waveform arrays.
2. `local_embeddings.extract_embeddings`: binarise activations with theta; embed each (chunk,
   local speaker) on the mixture samples where it is the only active speaker (concatenated), if
   there are at least `min_embedding_duration` seconds of them.
3. `assignment.assign_speakers`: agglomerative clustering with threshold delta (or a fixed /
   bounded number of speakers), then constrained (Hungarian) assignment so that the local speakers
   of one chunk go to distinct global speakers. Active local speakers without an embedding (only
   overlapped speech, or too short) are assigned by continuity: the activation overlap with the
   already assigned local speakers of the neighbouring chunks. Inactive local speakers are dropped.
4. `activations.stitch_activations`: weighted (Hann) average of the chunk activations on the
   global 8 ms frame grid (max when two local speakers map to one speaker), binarised into the
   discrete diarization (`min_duration_off` / `min_duration_on`); speakers that are never active
   are removed.
   Optional (`vad: "silero"`): `speech.apply_speech` gives the frames where a voice activity
   detector (core.vad, Silero) hears speech but no speaker is active to the speaker with the
   highest activation there (and, with `vad_gate`, drops speaker frames without speech).
5. `sources.stitch_sources`: overlap-add straight into one float32 (samples x speakers) buffer.
   Before a chunk's source is added its gain (sign included) is fitted by least squares to what is
   already stitched on the overlap, or, when nothing reliable is stitched there yet, jointly with
   the chunk's other sources to the mixture. Hann weights; the division is by the sum of the
   weights actually added for that speaker (tracked only for the current window, so it costs no
   extra N x S buffer). Two local sources mapped to one speaker are summed, not maxed.
6. `sources.remove_leakage`: zero a speaker's source wherever it is inactive and was not active
   within +-leakage_collar seconds; done on sample intervals in place (exact for any collar,
   including 0).

Clustering runs on at most MAX_CLUSTERING_EMBEDDINGS evenly spread embeddings (SciPy linkage
needs n^2/2 distances; an hour gives 10-20 thousand near-duplicates from the overlapping windows);
all embeddings are then assigned to the resulting centroids.

Peak memory is O(samples x speakers): waveform (4 B/sample) + source cache (12 B/sample at
K_max=3, none above `source_cache_minutes`) + output (4 B/sample/speaker). Audio shorter than one
window is zero-padded to one window. Silence gives an empty annotation and a (samples x 0) source
array. `num_speakers` larger than the number of speaker embeddings found is capped to that number
with a warning (recorded in `SeparationResult.warnings`), not an error, so that batch jobs on short
files go on. Whenever fewer speakers come out than `num_speakers` / `min_speakers` asked for,
`SeparationResult.speaker_note` (also in the warnings) says why: fewer clusters could be formed, or a
cluster's activations never made a turn (`runner.speaker_shortfall`).

What differs from pyannote.audio's reference pipeline: it keeps every chunk's separated waveforms
and builds float64 chunks x samples x speakers arrays (tens of GB per hour); here sources are
overlap-added straight into the output with fitted gains and signs, normalised by the weights
actually added, two local sources of one speaker are summed rather than maxed, everything stays
float32, and leakage removal works for any collar including 0.
"""

from core.pipeline.activations import binarize, frame_intervals, stitch_activations
from core.pipeline.assignment import assign_speakers
from core.pipeline.local_embeddings import EmbeddingSet, extract_embeddings
from core.pipeline.params import PARAMS_NAME, PipelineParams, copy_tuned_params
from core.pipeline.result import SeparationResult
from core.pipeline.runner import Pipeline, resolve_device, speaker_label
from core.pipeline.sources import remove_leakage, stitch_sources
from core.pipeline.speech import apply_speech, speech_frames
from core.pipeline.windows import ChunkOutputs, chunk_starts, run_model, separation_chunks

__all__ = [
    "PipelineParams", "Pipeline", "SeparationResult", "ChunkOutputs", "EmbeddingSet",
    "run_model", "extract_embeddings", "assign_speakers", "stitch_activations", "binarize",
    "stitch_sources", "remove_leakage", "speaker_label", "resolve_device",
    "PARAMS_NAME", "copy_tuned_params", "apply_speech", "speech_frames", "chunk_starts", "separation_chunks", "frame_intervals",
]
