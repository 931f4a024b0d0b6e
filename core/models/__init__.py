"""Neural models: the joint ToTaToNet (totatonet.py), its maskers and its SSL front end."""

from core.models.totatonet import ToTaToNet, ToTaToNetConfig, count_parameters, load_model, resolve_model_path

__all__ = ["ToTaToNet", "ToTaToNetConfig", "load_model", "resolve_model_path", "count_parameters"]
