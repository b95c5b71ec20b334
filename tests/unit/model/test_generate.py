"""Generation: KV cache vs recomputation vs Hugging Face generate, sampling filters vs HF's, streamed text (the
sample command itself: tests/integration/model/test_sample_cli.py)."""
import io

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor, TopKLogitsWarper,
                                                    TopPLogitsWarper)

from model.convert import gpt_from_hf
from model.generate import apply_repetition_penalty, filter_top_k, filter_top_p, generate
from model.gpt import GPT, GPTConfig
from model.sample import write_text_stream
from pipeline.tokenizer import get_tokenizer

VOCAB = 1000


@pytest.fixture(scope="module")
def hf_and_ours(tmp_path_factory):
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=64, vocab_size=VOCAB,
                                    bos_token_id=None, eos_token_id=None, pad_token_id=0)).eval()
    with torch.no_grad():  # trained-like magnitudes: clear winners for greedy decoding, varied continuations
        for p in hf.parameters():
            p.normal_(0.0, 0.1)
    folder = tmp_path_factory.mktemp("hf")
    hf.save_pretrained(folder)
    return hf, gpt_from_hf(folder)


def test_greedy_with_kv_cache_equals_hugging_face_generate_and_recomputation(hf_and_ours):
    hf, ours = hf_and_ours
    prompt = torch.randint(0, VOCAB, (3, 7))
    expected = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=50, do_sample=False,
                           eos_token_id=None, pad_token_id=0)
    cached = generate(ours, prompt, 50, temperature=0)
    recomputed = generate(ours, prompt, 50, temperature=0, use_kv_cache=False)
    assert torch.equal(cached, expected)
    assert len(cached[:, 7:].unique()) > 5  # a real continuation, not one token repeated
    assert torch.equal(recomputed, cached)


def test_greedy_with_repetition_penalty_equals_hugging_face(hf_and_ours):
    hf, ours = hf_and_ours
    prompt = torch.randint(0, VOCAB, (2, 5))
    expected = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=30, do_sample=False,
                           repetition_penalty=1.5, eos_token_id=None, pad_token_id=0)
    assert torch.equal(generate(ours, prompt, 30, temperature=0, repetition_penalty=1.5), expected)


def test_top_k_1_sampling_equals_greedy(hf_and_ours):
    _, ours = hf_and_ours
    prompt = torch.randint(0, VOCAB, (2, 4))
    greedy = generate(ours, prompt, 30, temperature=0)
    ours.train()  # generation turns dropout (0.1 in this config) off, then gives the training mode back
    sampled = generate(ours, prompt, 30, temperature=1.3, top_k=1, generator=torch.Generator().manual_seed(5))
    assert ours.training
    ours.eval()
    assert torch.equal(sampled, greedy)


def test_same_seed_same_sample_and_generation_past_block_size(hf_and_ours):
    _, ours = hf_and_ours
    prompt = torch.randint(0, VOCAB, (1, 10))
    runs = [generate(ours, prompt, 100, top_p=0.9, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(runs[0], runs[1]) and runs[0].shape == (1, 110)  # 110 > block_size 64: window slides
    different = generate(ours, prompt, 100, top_p=0.9, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(different, runs[0])


def test_repetition_penalty_matches_hugging_face_and_lowers_repeated_tokens():
    torch.manual_seed(0)
    logits = torch.randn(4, VOCAB) * 3
    idx = torch.randint(0, VOCAB, (4, 20))
    ours = apply_repetition_penalty(logits, idx, 1.8)
    torch.testing.assert_close(ours, RepetitionPenaltyLogitsProcessor(1.8)(idx, logits.clone()), atol=0, rtol=0)
    before, after = logits.softmax(-1), ours.softmax(-1)
    for row in range(4):
        seen = idx[row].unique()
        assert torch.all(after[row, seen] < before[row, seen])
        unseen = torch.ones(VOCAB, dtype=torch.bool)
        unseen[seen] = False
        assert torch.all(after[row, unseen] > before[row, unseen])


@pytest.mark.parametrize("top_k", [1, 5, 50])
def test_top_k_keeps_what_hugging_face_keeps(top_k):
    logits = torch.randn(3, VOCAB)
    expected = TopKLogitsWarper(top_k)(None, logits.clone())
    assert torch.equal(filter_top_k(logits, top_k).isinf(), expected.isinf())


@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.99])
def test_top_p_keeps_what_hugging_face_keeps(top_p):
    torch.manual_seed(int(top_p * 100))
    logits = torch.randn(3, VOCAB) * 2
    expected = TopPLogitsWarper(top_p)(None, logits.clone())
    assert torch.equal(filter_top_p(logits, top_p).isinf(), expected.isinf())


def test_padded_vocabulary_is_never_sampled():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=VOCAB, n_layer=1, n_head=2, n_embd=16))
    with torch.no_grad():  # make the padding rows the most attractive outputs, were they not masked
        model.lm_head.weight[VOCAB:] = 10 * model.transformer.ln_f.weight.sign()
    out = generate(model, torch.zeros(8, 1, dtype=torch.long), 31, temperature=2.0,
                   generator=torch.Generator().manual_seed(0))
    assert out.max() < VOCAB


def test_streamed_text_decodes_multibyte_characters_split_across_tokens():
    enc = get_tokenizer("gpt2").encoding
    text = "你好，世界！🙂 café"
    tokens = enc.encode(text)
    assert any(not _is_complete_utf8(enc.decode_single_token_bytes(t)) for t in tokens)  # the case under test
    out = io.StringIO()
    write_text_stream(tokens, enc, out)
    assert out.getvalue() == text


def test_streamed_text_names_a_chat_models_markers_past_the_bpe():
    # a GPT-2 model fine-tuned for chat samples ids 50257/50258, which tiktoken's gpt2 encoding cannot decode
    enc = get_tokenizer("gpt2").encoding
    tokens = [enc.n_vocab, *enc.encode("assistant\n你好"), enc.n_vocab + 1]
    out = io.StringIO()
    write_text_stream(tokens, enc, out, markers={enc.n_vocab: "<|im_start|>", enc.n_vocab + 1: "<|im_end|>"})
    assert out.getvalue() == "<|im_start|>assistant\n你好<|im_end|>"


def _is_complete_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
