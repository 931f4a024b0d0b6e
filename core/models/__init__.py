"""Neural models: the joint ToTaToNet (totatonet.py), its maskers and its SSL front end, and where a
model name leads (resolve.py: folders, `default`, pyannote checkpoints, Hugging Face Hub ids)."""

from core.models.resolve import ModelSource, load_model, resolve_model, resolve_model_path
from core.models.totatonet import ToTaToNet, ToTaToNetConfig, count_parameters

__all__ = ["ToTaToNet", "ToTaToNetConfig", "load_model", "resolve_model", "resolve_model_path", "ModelSource",
           "count_parameters"]
