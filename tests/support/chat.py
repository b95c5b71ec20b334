"""A model for the chat and serve tests: GPT-2 sized vocabulary with the chat rows (50,259), 2 tiny layers, weights
drawn at trained-like magnitudes so greedy replies are clear and varied, saved as a run folder. (The shared tiny_run
is 4 steps in: it answers every prompt with newlines, which proves nothing about whose reply is whose.)"""
from pathlib import Path

import torch

from model.build import build_model
from model.checkpoint.weights import save_weights
from model.gpt import GPTConfig

CHAT_VOCAB = 50259  # GPT-2's 50,257 + <|im_start|>, <|im_end|> (model/chat/template.py)


def random_chat_run(folder: Path, block_size: int = 96, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_model(GPTConfig(vocab_size=CHAT_VOCAB, n_layer=2, n_head=2, n_embd=32, block_size=block_size))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    run = folder / "chat-run"
    save_weights(model, run / "checkpoints" / "step_000001" / "model")
    return run
