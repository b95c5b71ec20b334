"""What chat and serve open: a run folder and its Hugging Face export give the same replies; a model of another
vocabulary is one error line."""
import pytest
import torch

from model.build import build_model
from model.chat.load import load_chat
from model.chat.session import ChatSession, Sampling
from model.checkpoint.layout import CheckpointError
from model.checkpoint.weights import load_model, save_weights
from model.convert import export_to_hf
from model.gpt import GPTConfig
from tests.support.chat import random_chat_run

GREEDY = Sampling(temperature=0, repetition_penalty=1.5, max_new_tokens=8)


def test_a_run_folder_and_its_hugging_face_export_chat_alike(tmp_path):
    run = random_chat_run(tmp_path, block_size=64)
    export_to_hf(load_model(run), tmp_path / "hf")
    replies = []
    for path in (run, tmp_path / "hf"):
        engine, chat_format = load_chat(path, device="cpu")
        replies.append("".join(ChatSession(engine, chat_format, "Be brief.").turn("你好 there", GREEDY)))
    assert replies[0] == replies[1] and replies[0].strip()


def test_a_model_of_another_vocabulary_is_refused(tmp_path):
    torch.manual_seed(0)
    save_weights(build_model(GPTConfig(vocab_size=1000, n_layer=1, n_head=1, n_embd=8, block_size=16)), tmp_path)
    with pytest.raises(CheckpointError, match="vocab_size=1,000 but its tokenizer gpt2 has 50,257 ids"):
        load_chat(tmp_path, device="cpu")
