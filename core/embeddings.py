"""Speaker-embedding back ends for clustering the local speakers of the sliding windows.

A back end is chosen by name (`PipelineParams.embedding`):

- ``"resemblyzer"`` (offline default): the GE2E LSTM speaker encoder whose weights ship inside the
  `resemblyzer` wheel. We reproduce its preprocessing (16 kHz, volume normalised to -30 dBFS, 40-band
  mel power spectrogram, 25 ms / 10 ms) but not its webrtcvad silence trimming (the pipeline already
  selects speech), and batch the 1.6 s partial utterances of *all* requested segments into one
  forward pass (resemblyzer's own `embed_utterance` handles one utterance at a time).
- ``"speechbrain-ecapa"`` (the PixIT paper's ECAPA-TDNN): ``"speechbrain-ecapa:/path/to/folder"``,
  or the folder in ``$PIXIT_ECAPA_DIR``, or ``assets/embeddings/spkrec-ecapa-voxceleb``; or by
  Hugging Face Hub id, ``"speechbrain/spkrec-ecapa-voxceleb[@revision]"`` (also as
  ``"speechbrain-ecapa:speechbrain/..."``), fetched by speechbrain's own loader into the hub cache
  (HF_HUB_OFFLINE and HF_TOKEN respected; core.hub's one-line errors). A speechbrain
  hyperparams.yaml can instantiate any class, so hub ids are accepted only from the ``speechbrain``
  organisation; anything else must be a folder the user chose. A missing folder is a one-line
  PixitError.
- ``"mfcc"``: mean and standard deviation of MFCCs (and deltas). No weights, no network: a tiny
  fallback for tests and for machines without either encoder. Only distinguishes very different
  voices.

Every encoder maps a list of 16 kHz float32 waveforms to an (n, D) float32 array of L2-normalised
embeddings. Loaded encoders are cached per (name, device).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from core.errors import PixitError
from core.hub import parse_hub_id

SAMPLE_RATE = 16_000
TRUSTED_SPEECHBRAIN_ORGS = ("speechbrain",)  # hub ids whose hyperparams.yaml (which can run code) is loaded

__all__ = ["SpeakerEncoder", "get_encoder", "available_encoders", "l2_normalise"]


class SpeakerEncoder(Protocol):
    name: str
    dimension: int

    def __call__(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """(n, D) float32 L2-normalised embeddings of n 16 kHz waveforms."""


def available_encoders() -> list[str]:
    return ["resemblyzer", "speechbrain-ecapa", "mfcc"]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _normalise_volume(wav: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if wav.size else 0.0
    if rms < 1e-8:
        return wav.astype(np.float32, copy=False)
    return (wav * (10 ** (target_dbfs / 20) / rms)).astype(np.float32)


def _resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def get_encoder(name: str, device: str = "cpu") -> SpeakerEncoder:
    """The encoder called `name` (see module docstring), loaded once per (name, device)."""
    return _get_encoder(str(name), _resolve_device(device))


@functools.lru_cache(maxsize=8)
def _get_encoder(name: str, device: str) -> SpeakerEncoder:
    base, _, arg = name.partition(":")
    if base not in available_encoders() and parse_hub_id(name) is not None:  # a speechbrain repo by hub id
        base, arg = "speechbrain-ecapa", name
    if base == "resemblyzer":
        return ResemblyzerEncoder(device)
    if base == "speechbrain-ecapa":
        return EcapaEncoder(arg or None, device)
    if base == "mfcc":
        return MfccEncoder()
    raise PixitError(f"unknown speaker embedding {name!r} (choose from {', '.join(available_encoders())})")


class ResemblyzerEncoder:
    """resemblyzer's GE2E encoder, batched over the partial utterances of many segments."""

    name = "resemblyzer"
    dimension = 256
    partial_frames = 160  # 1.6 s of 10 ms mel frames (resemblyzer's training length)
    batch_partials = 256

    def __init__(self, device: str = "cpu"):
        try:
            import warnings

            import torch

            with warnings.catch_warnings():  # resemblyzer imports a deprecated scipy namespace
                warnings.simplefilter("ignore", DeprecationWarning)
                from resemblyzer import VoiceEncoder
        except Exception as exc:  # pragma: no cover - dependency is declared
            raise PixitError(f"the resemblyzer speaker encoder is not available ({exc})") from None
        self._torch = torch
        self.model = VoiceEncoder(device=device, verbose=False).eval()
        self.device = device

    def _mel(self, wav: np.ndarray) -> np.ndarray:
        from resemblyzer.audio import wav_to_mel_spectrogram

        if len(wav) < 400:  # one 25 ms STFT frame at least (librosa warns on shorter input)
            wav = np.pad(wav, (0, 400 - len(wav)))
        return wav_to_mel_spectrogram(wav)  # (frames, 40) float32

    def __call__(self, waveforms: list[np.ndarray]) -> np.ndarray:
        if not waveforms:
            return np.zeros((0, self.dimension), np.float32)
        partials: list[np.ndarray] = []
        owner: list[int] = []
        n = self.partial_frames
        for i, wav in enumerate(waveforms):
            mel = self._mel(_normalise_volume(np.asarray(wav, np.float32)))
            if len(mel) < n:  # short segment: pad with silence (as resemblyzer does)
                mel = np.pad(mel, ((0, n - len(mel)), (0, 0)))
            # non-overlapping partials; a tail shorter than half a partial is dropped (unless alone)
            starts = list(range(0, len(mel) - n + 1, n))
            tail = len(mel) - (starts[-1] + n)
            if tail >= n // 2:
                starts.append(len(mel) - n)
            for s in starts:
                partials.append(mel[s : s + n])
                owner.append(i)
        torch = self._torch
        out = np.zeros((len(waveforms), self.dimension), np.float64)
        owner_arr = np.asarray(owner)
        with torch.inference_mode():
            for b in range(0, len(partials), self.batch_partials):
                mels = torch.from_numpy(np.stack(partials[b : b + self.batch_partials])).to(self.device)
                emb = self.model(mels).float().cpu().numpy()
                np.add.at(out, owner_arr[b : b + self.batch_partials], emb)
        return l2_normalise(out)


class EcapaEncoder:
    """SpeechBrain ECAPA-TDNN from a local folder (hyperparams.yaml + embedding_model.ckpt ...)."""

    name = "speechbrain-ecapa"
    dimension = 192
    batch_size = 32

    def __init__(self, folder: str | None, device: str = "cpu"):
        from core.hub import translated_errors

        hub_id = parse_hub_id(folder) if folder and not Path(folder).expanduser().exists() else None
        if hub_id is not None:
            source, revision, savedir = hub_id[0], hub_id[1], None  # speechbrain reads the hub cache itself
            if source.split("/")[0] not in TRUSTED_SPEECHBRAIN_ORGS:
                raise PixitError(
                    f"speechbrain-ecapa: {source}: a speechbrain hyperparams.yaml can run code, so only repos of the "
                    f"{', '.join(TRUSTED_SPEECHBRAIN_ORGS)} organisation are loaded by hub id; if you trust it, "
                    f"download it (`hf download {source} --local-dir DIR`) and pass speechbrain-ecapa:DIR")
        else:
            candidates = [folder] if folder else [
                os.environ.get("PIXIT_ECAPA_DIR"),
                str(Path(__file__).resolve().parent.parent / "assets" / "embeddings" / "spkrec-ecapa-voxceleb"),
            ]
            path = next((Path(c).expanduser() for c in candidates if c and (Path(c).expanduser() / "hyperparams.yaml").is_file()), None)
            if path is None:
                where = folder or "$PIXIT_ECAPA_DIR or assets/embeddings/spkrec-ecapa-voxceleb"
                raise PixitError(
                    f"speechbrain-ecapa weights not found in {where} (need a folder with hyperparams.yaml, or name "
                    "a hub id: speechbrain/spkrec-ecapa-voxceleb); or use embedding 'resemblyzer' instead"
                )
            source, revision, savedir = str(path), None, str(path)
        try:
            import torch
            from speechbrain.inference.speaker import EncoderClassifier
            from speechbrain.utils.fetching import FetchConfig
        except Exception as exc:
            raise PixitError(f"speechbrain cannot be imported ({str(exc).splitlines()[0]})") from None
        try:
            with translated_errors(source, revision):
                # token None: huggingface_hub's own (HF_TOKEN or the stored login); speechbrain's default sends none
                self.model = EncoderClassifier.from_hparams(
                    source=source, savedir=savedir, run_opts={"device": device},
                    fetch_config=FetchConfig(revision=revision, token=None),
                )
        except PixitError:
            raise
        except Exception as exc:
            raise PixitError(f"cannot load speechbrain-ecapa from {source} ({str(exc).splitlines()[0]})") from None
        self._torch = torch
        self.device = device

    def __call__(self, waveforms: list[np.ndarray]) -> np.ndarray:
        torch = self._torch
        outs = []
        order = np.argsort([len(w) for w in waveforms])  # batch similar lengths together
        result = [None] * len(waveforms)
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                idx = order[b : b + self.batch_size]
                lengths = np.array([len(waveforms[i]) for i in idx])
                batch = np.zeros((len(idx), lengths.max()), np.float32)
                for row, i in enumerate(idx):
                    batch[row, : lengths[row]] = waveforms[i]
                emb = self.model.encode_batch(
                    torch.from_numpy(batch).to(self.device), torch.from_numpy(lengths / lengths.max()).float().to(self.device)
                )
                emb = emb.reshape(len(idx), -1).float().cpu().numpy()
                for row, i in enumerate(idx):
                    result[i] = emb[row]
        outs = np.stack(result) if result else np.zeros((0, self.dimension), np.float32)
        return l2_normalise(outs)


class MfccEncoder:
    """Mean/std of 20 MFCCs (c0 excluded) and their deltas: 76-d, no weights."""

    name = "mfcc"
    dimension = 76

    def __init__(self):
        from scipy.fft import dct

        self._dct = dct
        self._fb = _mel_filterbank(40, 512, SAMPLE_RATE)

    def _one(self, wav: np.ndarray) -> np.ndarray:
        wav = np.asarray(wav, np.float32)
        if len(wav) < 400:
            wav = np.pad(wav, (0, 400 - len(wav)))
        frames = np.lib.stride_tricks.sliding_window_view(wav, 400)[::160] * np.hanning(400).astype(np.float32)
        power = np.abs(np.fft.rfft(frames, 512)) ** 2
        logmel = np.log(power @ self._fb.T + 1e-8)
        mfcc = self._dct(logmel, type=2, norm="ortho", axis=-1)[:, 1:20]  # c0 (level) left out
        delta = np.diff(mfcc, axis=0) if len(mfcc) > 1 else np.zeros_like(mfcc)
        feats = np.concatenate([mfcc.mean(0), mfcc.std(0), delta.std(0), np.abs(delta).mean(0)])
        return feats.astype(np.float32)

    def __call__(self, waveforms: list[np.ndarray]) -> np.ndarray:
        if not waveforms:
            return np.zeros((0, self.dimension), np.float32)
        feats = np.stack([self._one(w) for w in waveforms])
        # cosine similarity needs centred features: centre on fixed per-dimension scales so the
        # embedding of a segment does not depend on the other segments in the batch
        feats = feats / np.array([8.0] * 19 + [4.0] * 19 + [2.0] * 19 + [2.0] * 19, np.float32)
        return l2_normalise(feats)


def _mel_filterbank(n_mels: int, n_fft: int, sr: int) -> np.ndarray:
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    mels = np.linspace(hz_to_mel(60.0), hz_to_mel(sr / 2 - 200), n_mels + 2)
    hz = mel_to_hz(mels)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    fb = np.zeros((n_mels, len(bins)), np.float32)
    for m in range(n_mels):
        lo, ce, hi = hz[m], hz[m + 1], hz[m + 2]
        up = (bins - lo) / (ce - lo)
        down = (hi - bins) / (hi - ce)
        fb[m] = np.maximum(0, np.minimum(up, down))
    return fb
