"""Run pyannote.audio ToTaToNet checkpoints on waveforms, in pyannote.audio's own environment.

    python -c "$(cat pyannote_probe.py)" IN.npy CHECKPOINT...

IN.npy holds (B, T) float32 16 kHz waveforms; for the i-th checkpoint, out{i}.npz (in the current
folder) gets `activations` (B, K, F) and `sources` (B, K, T), in this project's layout.
`core.models.pyannote_export.run_in_pyannote` runs it; it imports only numpy, torch and
pyannote.audio (and, for --relu-subclass checkpoints, the architecture module they name).
"""

import sys

import numpy as np
import torch
from pyannote.audio import Model


def main(waveforms: str, *checkpoints: str) -> None:
    x = torch.from_numpy(np.load(waveforms)).float().unsqueeze(1)  # (B, 1, T)
    for i, checkpoint in enumerate(checkpoints):
        model = Model.from_pretrained(checkpoint).eval()
        with torch.inference_mode():
            activations, sources = model(x)  # (B, F, K), (B, T, K)
        np.savez(f"out{i}.npz", activations=activations.transpose(1, 2).numpy(), sources=sources.transpose(1, 2).numpy())


if __name__ == "__main__":
    main(*sys.argv[1:])
