"""Structured pruning of the SSL front end (DiariZen style): hard-concrete gates on conv channels,
attention heads and FFN units, distillation from the task-fine-tuned teacher with an augmented
Lagrangian sparsity target, then physical shrinking to a smaller dense model.

Loading a pruned front end (what core.models.ssl uses):
- `load_pruned(folder)` -> transformers model, for a folder written by `save_pruned`
  (`is_pruned_folder(folder)` tells such folders apart);
- `build_pruned_model(hf_config_dict)` -> same architecture with random weights, for rebuilding
  from a stored transformers config dict that has a "pixit_pruning" entry
  (`is_pruned_config(d)`).
"""

from core.pruning.arch import Arch, Counts, counts_of, model_family
from core.pruning.gates import HardConcrete, PruningGates, attach_gates
from core.pruning.shrink import (
    PRUNING_KEY,
    build_pruned_model,
    describe,
    is_pruned_config,
    is_pruned_folder,
    load_pruned,
    save_pruned,
    shrink,
)

__all__ = [
    "Arch", "Counts", "counts_of", "model_family", "HardConcrete", "PruningGates", "attach_gates",
    "PRUNING_KEY", "build_pruned_model", "describe", "is_pruned_config", "is_pruned_folder",
    "load_pruned", "save_pruned", "shrink",
]
