"""Frame-level DER of models on every 5 s chunk of annotated meetings, without clustering.

    python assets/recipes/local_der.py MANIFEST MODEL [MODEL ...]

The pipeline's DER mixes what the model does with what speaker clustering does; on 10 minutes of
audio the clustering part alone moves it by several points. This scores the model's own output:
non-overlapping 5 s chunks, activations binarised at 0.5, mapped to the reference speakers of the
chunk with the best permutation (core.training.der_counts, the training's validation DER).
"""

import sys

import numpy as np
import torch
from pyannote.core import Segment

from core.data import FrameGrid, read_chunk, read_manifest
from core.models import load_model
from core.training import der_counts

CHUNK = 5.0
ROWS = 6  # reference and hypothesis speakers are zero-padded to this many rows


def chunk_targets(rec, start: float, grid: FrameGrid) -> np.ndarray:
    y = np.zeros((ROWS, grid.num_frames), np.float32)
    crop = rec.annotation.crop(Segment(start, start + CHUNK))
    for i, label in enumerate(sorted(crop.labels())[:ROWS]):
        for seg in crop.label_timeline(label):
            lo, hi = grid.frame_range(seg.start - start, seg.end - start)
            y[i, lo:hi] = 1.0
    return y


@torch.no_grad()
def local_der(model, recordings) -> dict:
    grid = FrameGrid.from_model(model, CHUNK)
    counts = torch.zeros(4, dtype=torch.float64)
    for rec in recordings:
        for start in np.arange(0.0, rec.duration - CHUNK + 1e-6, CHUNK):
            x = torch.from_numpy(read_chunk(rec.audio, float(start), CHUNK))[None]
            _, act = model(x)
            hyp = torch.zeros(1, ROWS, grid.num_frames)
            hyp[:, : act.shape[1]] = act[:, :, : grid.num_frames]
            counts += der_counts(hyp, torch.from_numpy(chunk_targets(rec, float(start), grid))[None])
    fa, md, sc, speech = counts.tolist()
    return {"der": (fa + md + sc) / speech, "false_alarm": fa / speech, "missed": md / speech,
            "confusion": sc / speech, "speech_frames": int(speech)}


if __name__ == "__main__":
    torch.set_num_threads(1)
    recs = read_manifest(sys.argv[1])
    for path in sys.argv[2:]:
        r = local_der(load_model(path).eval(), recs)
        print(f"{path}: local DER {100 * r['der']:.2f} % (FA {100 * r['false_alarm']:.2f}, MD {100 * r['missed']:.2f}, "
              f"SC {100 * r['confusion']:.2f}) over {r['speech_frames']} speaker-frames", flush=True)
