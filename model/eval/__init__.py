"""Evaluation suite: log-likelihood scoring of the offline tasks (gptstack.eval_data) for `gptstack eval` and the
training loop."""
from model.eval.lm import load_eval_model
from model.eval.scoring import centered_mean, evaluate

__all__ = ["centered_mean", "evaluate", "load_eval_model"]
