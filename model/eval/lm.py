"""The model being evaluated, behind one small interface: token ids of a text, logits of a batch of rows.

Two kinds of folder are accepted:
  - ours: a run folder, a checkpoint folder or a weights folder (model.checkpoint.weights.resolve_checkpoint), with
    the tokenizer the checkpoint was trained with (model.run_tokenizer.weights_tokenizer);
  - a Hugging Face folder (config.json naming `model_type`, e.g. what `gptstack convert --to-hf` writes), loaded
    through transformers' AutoModelForCausalLM and AutoTokenizer, as lm-eval loads it.
Context/continuation pairs are split into tokens the way lm-eval does (`encode_pair`), so both score the same ids.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch

from gptstack.errors import InputError
from model.checkpoint.layout import CheckpointError, is_hf_export


class EvalModel(ABC):
    """What the scorer needs of a model, ours or a transformers one: max_length; eot (the id an empty context
    gets)."""

    name: str
    max_length: int
    eot: int
    device: torch.device

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """The ids of `text`, special-token text as plain text."""

    @abstractmethod
    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) float logits."""

    def logits_at(self, idx: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """(K, V) logits of positions (rows[k], columns[k]) only: the ones a continuation is scored at."""
        return self.logits(idx)[rows, columns]


class _HeadAt(torch.nn.Module):
    """The output head applied to chosen positions only: with a 50k vocabulary the head is most of a small model's
    forward pass, and a choice is scored at a few of the row's positions."""

    def __init__(self, head: torch.nn.Module, rows: torch.Tensor, columns: torch.Tensor):
        super().__init__()
        self.head, self.rows, self.columns = head, rows, columns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[self.rows, self.columns])


class OurModel(EvalModel):
    def __init__(self, model, encoding, name: str, device: torch.device):
        self.model, self.encoding, self.name, self.device = model, encoding, name, device
        self.max_length = model.config.block_size
        self.eot = encoding.eot_token

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)[0]

    def logits_at(self, idx: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        module = getattr(self.model, "module", self.model)  # a DeepSpeed engine's model, or the model
        head = getattr(module, "lm_head", None)
        if not isinstance(head, torch.nn.Linear):
            return super().logits_at(idx, rows, columns)
        module.lm_head = _HeadAt(head, rows, columns)  # both families call self.lm_head(x) on the final hidden x
        try:
            return self.model(idx)[0]
        finally:
            module.lm_head = head


class HFModel(EvalModel):
    def __init__(self, folder: Path, device: torch.device):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).to(device).eval()
        except (OSError, ValueError, KeyError) as error:
            raise InputError(f"{folder}: not a loadable Hugging Face model ({' '.join(str(error).split())[:160]})"
                             ) from None
        self.name, self.device = str(folder), device
        config = self.model.config
        self.max_length = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 2048)
        self.eot = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx).logits


def load_eval_model(path: str | Path, device: str | torch.device | None = None) -> EvalModel:
    """A run/checkpoint/weights folder of ours or a Hugging Face folder; one-line error if it holds no weights."""
    from model.checkpoint.weights import load_model, resolve_checkpoint
    from model.run_tokenizer import weights_tokenizer
    path = Path(path)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if is_hf_export(path):
        return HFModel(path, device)
    try:
        folder = resolve_checkpoint(path)
    except CheckpointError as error:
        raise InputError(f"--checkpoint: {error} (or give a Hugging Face folder with config.json)") from None
    model = load_model(folder, device=device)
    encoding = weights_tokenizer(folder).encoding
    if model.config.vocab_size != encoding.n_vocab:
        raise InputError(f"checkpoint {folder}: the model has vocab_size={model.config.vocab_size} but its "
                         f"tokenizer has {encoding.n_vocab} tokens")
    return OurModel(model, encoding, str(folder), device)


def wrap_training_model(model, encoding, device) -> EvalModel:
    """The model being trained (engine.module), for the in-loop suite."""
    return OurModel(model, encoding, "training", torch.device(device))


def encode_pair(lm: EvalModel, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's split: trailing spaces of the context move to the continuation; the whole text is encoded and
    the continuation is what follows the context's own tokens. An empty context is the end-of-text token."""
    if not context:
        return [lm.eot], lm.encode(continuation)
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = lm.encode(context + continuation)
    context_ids = lm.encode(context)
    return context_ids, whole[len(context_ids):]
