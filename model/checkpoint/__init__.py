"""A training run's checkpoints: layout.py (names, predicates, the latest), manager.py (saving, loading, resuming),
weights.py (model/ weights for sample and convert), safe_load.py (nothing unpickled runs code), rank_state.py."""
from model.checkpoint.layout import (CheckpointError, committed, estimated_checkpoint_bytes, holds_weights, is_complete,
                                     latest, read_trainer_state, remove_unfinished_saves, step_dir_name)
from model.checkpoint.manager import (CheckpointManager, check_compatible, convert_to_universal, needs_universal,
                                      resolve_resume)

__all__ = ["CheckpointError", "CheckpointManager", "check_compatible", "committed", "convert_to_universal",
           "estimated_checkpoint_bytes", "holds_weights", "is_complete", "latest", "needs_universal",
           "read_trainer_state", "remove_unfinished_saves", "resolve_resume", "step_dir_name"]
