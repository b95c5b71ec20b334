"""Validation loss in bits per byte: comparable between runs with different tokenizers.

`val_loss` is nats per token, and a token is a different amount of text in every tokenizer (GPT-2 BPE: ~4.3 bytes
of English, ~1.4 bytes of Chinese; a tokenizer trained on Chinese: ~3.9). Bits per UTF-8 byte of the validation
text divides the same total loss by the size of the text instead:

    val_bpb = sum over predicted tokens of loss (nats)  /  (ln 2 * sum of their UTF-8 bytes)

Special tokens (the end-of-text between documents) are not text: they have 0 bytes and, as in nanochat, their loss
is left out of the sum too, so the measure is the cost of the text alone.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from model.evaluation import _all_reduce_sum  # one sum over ranks for every evaluation


def token_byte_lengths(encoding, vocab_size: int) -> torch.Tensor:
    """UTF-8 bytes of every id (0 for special tokens and for ids the tokenizer does not have)."""
    lengths = np.zeros(vocab_size, dtype=np.int64)
    specials = set(encoding._special_tokens.values())
    for token in range(min(encoding.n_vocab, vocab_size)):
        if token not in specials:
            try:
                lengths[token] = len(encoding.decode_single_token_bytes(token))
            except KeyError:  # a hole in the ids (never produced)
                pass
    return torch.from_numpy(lengths)


@torch.no_grad()
def validation_loss_and_bpb(engine, val_batches, num_batches: int, device, token_bytes: torch.Tensor) -> dict:
    """{"val_loss": mean nats per token over the first num_batches micro-batches of every rank (as before),
    "val_bpb": bits per byte of the same windows}. Computed from the logits, so one forward pass gives both."""
    val_batches.reset()
    engine.module.eval()
    token_bytes = token_bytes.to(device)
    loss_sum = nats_text = bytes_text = 0.0
    for _ in range(num_batches):
        x, y = val_batches.next_batch()
        x, y = x.to(device), y.to(device)
        logits, loss = engine(x, y)
        loss_sum += loss.float().item()
        per_token = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
        nbytes = token_bytes[y.reshape(-1)]
        nats_text += (per_token * (nbytes > 0)).sum().item()
        bytes_text += nbytes.sum().item()
    engine.module.train()
    loss_total, batches, nats, nbytes = _all_reduce_sum([loss_sum, num_batches, nats_text, bytes_text], device)
    return {"val_loss": loss_total / batches, "val_bpb": nats / (math.log(2) * nbytes) if nbytes else float("nan")}
