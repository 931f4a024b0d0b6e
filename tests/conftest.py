"""Shared test fixtures: tiny annotated synthetic meetings and tiny model configs.

`write_meeting` builds a recording from speaker-specific harmonic "voices" (own f0, own spectral
tilt, syllable-rate amplitude modulation) with random turns and some overlap, and writes
<uri>.wav (16 kHz mixture + a little noise), <uri>.rttm, <uri>.uem and sources/<uri>/<label>.wav.
Usable outside pytest too (`from tests.conftest import write_corpus`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def _voice(rng: np.random.Generator, f0: float, tilt: float, num: int) -> np.ndarray:
    t = np.arange(num) / SR
    vibrato = 1 + 0.02 * np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / SR
    wave = sum((1.0 / h**tilt) * np.sin(h * phase + rng.uniform(0, 6)) for h in range(1, 9))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6))
    return (wave * envelope).astype(np.float32)


def make_turns(rng: np.random.Generator, duration: float, labels: list[str]) -> list[tuple[float, float, str]]:
    """Random turns: speakers alternate, 0.4-2.5 s each, gaps up to 0.6 s, overlaps up to 0.6 s."""
    turns, t, last = [], rng.uniform(0, 0.5), None
    while t < duration - 0.3:
        label = rng.choice([lab for lab in labels if lab != last]) if len(labels) > 1 else labels[0]
        length = rng.uniform(0.4, 2.5)
        end = min(duration, t + length)
        turns.append((float(t), float(end), str(label)))
        last = label
        t = end + (rng.uniform(-0.6, 0.0) if rng.random() < 0.3 else rng.uniform(0.0, 0.6))
        t = max(t, turns[-1][0] + 0.1)
    return turns


def write_meeting(
    folder: Path,
    uri: str,
    duration: float = 20.0,
    num_speakers: int = 3,
    seed: int = 0,
    uem: list[tuple[float, float]] | None = None,
    turns: list[tuple[float, float, str]] | None = None,
    sample_rate: int = SR,
) -> dict[str, Path]:
    """Write one synthetic annotated meeting; returns its paths (audio, rttm, uem, sources)."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    labels = [f"spk{k}" for k in range(num_speakers)]
    if turns is None:
        turns = make_turns(rng, duration, labels)
    num = int(round(duration * SR))
    sources = {}
    for k, label in enumerate(sorted({lab for _, _, lab in turns} | set(labels))):
        voice = _voice(rng, f0=rng.uniform(90, 320), tilt=rng.uniform(0.5, 1.5), num=num)
        gate = np.zeros(num, dtype=np.float32)
        for start, end, lab in turns:
            if lab == label:
                a, b = int(start * SR), int(end * SR)
                ramp = np.minimum(1, np.minimum(np.arange(b - a), np.arange(b - a)[::-1]) / 160)
                gate[a:b] = np.maximum(gate[a:b], ramp)
        sources[label] = 0.1 * voice * gate * rng.uniform(0.6, 1.2)
    mixture = sum(sources.values()) + 0.002 * rng.standard_normal(num).astype(np.float32)
    source_dir = folder / "sources" / uri
    source_dir.mkdir(parents=True, exist_ok=True)
    for label, wave in sources.items():
        sf.write(source_dir / f"{label}.wav", wave, SR, subtype="FLOAT")
    audio = folder / f"{uri}.wav"
    if sample_rate != SR:
        from scipy.signal import resample_poly

        sf.write(audio, resample_poly(mixture, sample_rate, SR).astype(np.float32), sample_rate, subtype="FLOAT")
    else:
        sf.write(audio, mixture.astype(np.float32), SR, subtype="FLOAT")
    rttm = folder / f"{uri}.rttm"
    rttm.write_text("".join(f"SPEAKER {uri} 1 {s:.3f} {e - s:.3f} <NA> <NA> {lab} <NA> <NA>\n" for s, e, lab in turns))
    uem_path = folder / f"{uri}.uem"
    regions = uem if uem is not None else [(0.0, duration)]
    uem_path.write_text("".join(f"{uri} 1 {s:.3f} {e:.3f}\n" for s, e in regions))
    return {"audio": audio, "rttm": rttm, "uem": uem_path, "sources": source_dir}


def write_corpus(folder: Path, num_meetings: int = 2, duration: float = 20.0, speakers=(2, 3), seed: int = 0) -> Path:
    """Several meetings + manifest.csv (audio,rttm,uem,sources, relative paths); returns the manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["audio,rttm,uem,sources"]
    for i in range(num_meetings):
        uri = f"meeting{i:03d}"
        write_meeting(folder, uri, duration, int(rng.integers(speakers[0], speakers[1] + 1)), seed=seed * 1000 + i)
        rows.append(f"{uri}.wav,{uri}.rttm,{uri}.uem,sources/{uri}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


@pytest.fixture
def meeting(tmp_path) -> dict[str, Path]:
    """One 20 s, 3-speaker annotated recording (wav + rttm + uem + sources) in tmp."""
    return write_meeting(tmp_path, "meeting", duration=20.0, num_speakers=3, seed=1)


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    """Manifest of two short 2-3 speaker meetings with ground-truth sources."""
    return write_corpus(tmp_path / "corpus", num_meetings=2, duration=16.0, seed=3)


def tiny_config():
    """A ToTaToNet config small enough to train a few steps in seconds on 2 CPU cores."""
    from core.models.totatonet import ToTaToNetConfig

    return ToTaToNetConfig(
        n_sources=3, n_filters=16, kernel_size=32, stride=16, masker="dprnn",
        masker_params={"bn_chan": 16, "hid_size": 16, "chunk_size": 50, "hop": 25, "n_repeats": 1},
        diar_pool=8, diar_hidden=16, diar_layers=1,
    )


@pytest.fixture
def tiny_model_config():
    """A ToTaToNet config small enough to train a few steps in seconds on 2 CPU cores."""
    return tiny_config()


def pipeline_model_config() -> dict:
    """The tiny random model the pipeline and CLI tests run (stride 16, one DPRNN block)."""
    return {"n_sources": 3, "n_filters": 16, "kernel_size": 32, "stride": 16, "masker": "dprnn",
            "masker_params": {"bn_chan": 16, "hid_size": 16, "n_repeats": 1, "chunk_size": 50, "hop": 25},
            "diar_pool": 8, "diar_hidden": 16, "diar_layers": 1}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    import torch

    from core.models.totatonet import ToTaToNet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "tiny"
    ToTaToNet(pipeline_model_config()).save(folder)
    return folder
