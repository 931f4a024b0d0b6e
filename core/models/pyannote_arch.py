"""pyannote.audio's ToTaToNet with a ReLU after its encoder: the architecture of checkpoints written by
`pixit export --format pyannote --relu-subclass` for models trained with encoder_activation="relu"
(the shipped default model), so that pyannote computes the function they were trained as.

pyannote.audio imports this module by the name stored in the checkpoint; it needs pyannote.audio,
so this project never imports it (its own environment has no pyannote.audio). The weights keep
pyannote's names: the ReLU is a forward hook on the encoder, not a new layer.
"""

import torch
from pyannote.audio.models.separation import ToTaToNet


def _relu(module, inputs, output):
    return torch.relu(output)


class ToTaToNetEncoderReLU(ToTaToNet):
    """ToTaToNet whose encoder output goes through a ReLU (masker input and masked representation)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder.register_forward_hook(_relu)
