"""The installed audio stack works as a whole: torchaudio's compiled library loads with this torch, and
speechbrain's speaker encoder loads from a local folder and embeds audio through the project's own
code path (core.embeddings). A torch / torchaudio pair that does not match fails here, loudly."""

from __future__ import annotations

import numpy as np
import torch

HYPERPARAMS = """\
n_mels: 24
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: 24
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
    paths:
        embedding_model: {folder}/embedding_model.ckpt
"""


def test_torchaudio_matches_torch_and_its_library_loads():
    import torchaudio
    from torchaudio._extension import _IS_TORCHAUDIO_EXT_AVAILABLE  # importing torchaudio loaded libtorchaudio

    release = lambda version: version.split("+")[0]  # noqa: E731  (2.11.0+cu130 -> 2.11.0)
    assert release(torchaudio.__version__) == release(torch.__version__), "torch and torchaudio must be a matching pair"
    assert _IS_TORCHAUDIO_EXT_AVAILABLE
    x = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    y = torchaudio.functional.lfilter(x, torch.tensor([1.0, -0.5]), torch.tensor([0.5, 0.5]))  # compiled kernel
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert torchaudio.functional.resample(x, 16000, 8000).shape == (1, 8000)


def test_speechbrain_speaker_encoder_loads_and_embeds(tmp_path):
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    from core.embeddings import get_encoder

    folder = tmp_path / "ecapa"
    folder.mkdir()
    (folder / "hyperparams.yaml").write_text(HYPERPARAMS.format(folder=folder))
    torch.manual_seed(0)
    net = ECAPA_TDNN(24, channels=[32, 32, 32, 32, 96], kernel_sizes=[5, 3, 3, 3, 1], dilations=[1, 2, 3, 4, 1],
                     attention_channels=16, lin_neurons=24)
    torch.save(net.state_dict(), folder / "embedding_model.ckpt")  # the folder layout speechbrain's hub repos use

    encoder = get_encoder(f"speechbrain-ecapa:{folder}", "cpu")
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 8000, 24000)]
    emb = encoder(waves)
    assert emb.shape == (3, 24) and np.all(np.isfinite(emb))
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(emb[0], emb[1])  # different audio, different embeddings
