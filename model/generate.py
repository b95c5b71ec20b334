"""Text generation: pick the next token from the model's prediction, append it, repeat.

The order of the logit changes follows Hugging Face `generate` (repetition penalty, then temperature, top-k,
top-p), so the same settings mean the same thing here and there. See docs/training.md, "Generating text".
"""
from collections.abc import Iterator

import torch

from gptstack.errors import GPTStackError
from model.gpt import GPT

# Below this a temperature is greedy: the limit of sampling as T -> 0, and dividing logits by a denormal such as 1e-45
# would overflow them to inf (softmax then gives NaN).
MIN_TEMPERATURE = 1e-5


class GenerationError(GPTStackError):
    """The model's prediction cannot be sampled from (its logits are NaN or infinite)."""


def apply_repetition_penalty(logits: torch.Tensor, idx: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make every token already in idx (B, T) less likely (CTRL paper; HF's RepetitionPenaltyLogitsProcessor):
    its logit is divided by `penalty` when positive and multiplied by it when negative, both moving it down."""
    if penalty == 1.0:
        return logits
    seen = torch.gather(logits, 1, idx)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, idx, seen)


def filter_top_k(logits: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Keep the k highest logits, -inf for the rest."""
    if not top_k or top_k >= logits.size(-1):
        return logits
    kth_best = torch.topk(logits, top_k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth_best, float("-inf"))


def filter_top_p(logits: torch.Tensor, top_p: float | None) -> torch.Tensor:
    """Nucleus sampling: keep the most likely tokens whose probabilities add up to top_p, -inf for the rest."""
    if top_p is None or top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the better tokens; the best one always stays
    remove = (mass_before >= top_p).scatter(1, order, mass_before >= top_p)
    return logits.masked_fill(remove, float("-inf"))


def choose_next_token(logits: torch.Tensor, idx: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, repetition_penalty: float = 1.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) of the next position, idx (B, T) the text so far -> next token ids (B, 1).
    temperature 0 (or below MIN_TEMPERATURE) means greedy: always the most likely token. Logits that are not finite
    (weights that overflow in the compute dtype) are a GenerationError, never a sample drawn from NaN."""
    logits = logits.float()
    if not bool(torch.isfinite(logits).all()):
        raise GenerationError(f"the model predicted NaN or infinite logits at position {idx.size(1)}: its weights "
                              f"overflow in this precision (try --dtype float32)")
    logits = apply_repetition_penalty(logits, idx, repetition_penalty)
    if temperature < MIN_TEMPERATURE:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if not bool(torch.isfinite(logits).all()):
        raise GenerationError(f"logits divided by temperature {temperature} overflow; use a larger --temperature "
                              f"(or 0 for greedy)")
    logits = filter_top_p(filter_top_k(logits, top_k), top_p)
    return torch.multinomial(logits.softmax(dim=-1), num_samples=1, generator=generator)


@torch.no_grad()
def generate_stream(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
                    use_kv_cache: bool = True, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield the next token ids (B, 1) one step at a time, continuing the prompts idx (B, T).

    With the KV cache the model sees each token once: the prompt in one pass, then only the newest token.
    Without it the whole text goes through the model every step (as in build-nanogpt), costing O(T) per token.
    Past block_size tokens the context is cut to the most recent ones (with the cache: the last half window is
    re-read and the cache rebuilt, so the next block_size/2 tokens are cheap again).
    """
    was_training = model.training
    model.eval()  # no dropout while generating; the caller's mode is restored at the end
    block_size, vocab_size = model.config.block_size, model.config.vocab_size
    cache, fresh = None, idx  # fresh: the tokens the model has not seen yet
    try:
        for _ in range(max_new_tokens):
            if not use_kv_cache:
                logits, _ = model(idx[:, -block_size:])
            else:
                if cache is None or cache.length + fresh.size(1) > block_size:
                    window = max(1, block_size // 2) if cache is not None else block_size
                    cache, fresh = model.new_kv_cache(), idx[:, -window:]
                logits, _ = model(fresh, kv_cache=cache)
            # logits[:, -1, :]: the prediction made at the last position is the one for the token that comes next.
            # [:vocab_size] leaves out the vocabulary padding, which must never be chosen.
            next_token = choose_next_token(logits[:, -1, :vocab_size], idx, temperature, top_k, top_p,
                                           repetition_penalty, generator)
            idx = torch.cat([idx, next_token], dim=1)
            fresh = next_token
            yield next_token
    finally:
        model.train(was_training)


def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, **options) -> torch.Tensor:
    """idx (B, T) -> (B, T + max_new_tokens): the prompts followed by the generated tokens."""
    new_tokens = list(generate_stream(model, idx, max_new_tokens, **options))
    return torch.cat([idx, *new_tokens], dim=1)
