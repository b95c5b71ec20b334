"""A GPT-2-vocabulary model fine-tuned for chat (50,259 ids) exports to GGUF with its two chat tokens as control
tokens, ChatML as tokenizer.chat_template and <|im_end|> as the end-of-turn id (llama.cpp and Ollama stop there)."""
import gguf

from model.gguf_export import vocabulary
from pipeline.tokenizer import get_tokenizer


def test_chat_tokens_are_control_tokens_after_gpt2s():
    tokens, types, _ = vocabulary(get_tokenizer("gpt2"), 50259)
    assert len(tokens) == 50259 and tokens[50256:] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert types[50257:] == [int(gguf.TokenType.CONTROL)] * 2 and types[50255] == int(gguf.TokenType.NORMAL)

