"""Batched log-likelihood scoring decides exactly what one-row-at-a-time scoring decides."""
import math

import pytest
import torch

from gptstack.eval_data import load_examples, requests
from model.eval.lm import encode_pair, wrap_training_model
from model.eval.scoring import Decision, _row, evaluate, score_rows, summarise
from model.gpt import GPT, GPTConfig
from pipeline.tokenizer import get_tokenizer


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=50257, n_layer=1, n_head=2, n_embd=32)).eval()
    return wrap_training_model(model, get_tokenizer("gpt2").encoding, "cpu")


def test_padding_and_batching_change_no_loglikelihood(lm):
    rows = [_row(lm, context, continuation) for example in load_examples("copa", 3) + load_examples("winogrande", 2)
            for context, continuation in requests(example)]
    alone = score_rows(lm, rows, batch_size=1)
    batched = score_rows(lm, rows, batch_size=4)
    assert [g for _, g in alone] == [g for _, g in batched]
    assert [ll for ll, _ in batched] == pytest.approx([ll for ll, _ in alone], abs=1e-4)
    assert all(ll < 0 for ll, _ in alone)


def test_long_contexts_keep_their_last_tokens(lm):
    ids, n = _row(lm, ("word " * 200).strip(), " end")
    assert len(ids) == lm.max_length + 1 and n == 1  # lm-eval's cut: max_length inputs + the last target


def test_a_continuation_longer_than_the_context_window_is_scored_on_what_fits(lm):
    ids, n = _row(lm, "Question", " word" * 100)
    assert len(ids) == lm.max_length + 1 and n == lm.max_length
    (ll, greedy), = score_rows(lm, [(ids, n)], batch_size=4)
    assert ll < 0 and greedy is False


def test_trailing_spaces_of_the_context_move_to_the_continuation(lm):
    assert encode_pair(lm, "The cat ", "sat") == encode_pair(lm, "The cat", " sat")
    context, continuation = encode_pair(lm, "", "Hello")
    assert context == [lm.eot] and continuation == lm.encode("Hello")


def test_summary_stderr_and_centring():
    decisions = [Decision("copa", i, 0, {"none": 0 if i < 3 else 1, "token": 0, "byte": 1}, [0.0, 0.0], i < 3)
                 for i in range(4)]
    copa = summarise(decisions, ["copa"])["copa"]
    assert copa["accuracy"] == 0.75 and copa["n"] == 4
    assert copa["stderr"] == pytest.approx(math.sqrt(0.75 * 0.25 / 3))  # lm-eval's sample standard error
    assert copa["centered"] == pytest.approx((0.75 - 0.5) / 0.5)
    assert copa["by_normalisation"] == {"none": 0.75, "token": 1.0, "byte": 0.0}


def test_evaluate_reports_every_task_with_its_count(lm):
    results, decisions = evaluate(lm, ["copa", "lambada"], limit=3, batch_size=4, shots=0)
    assert [results[t]["n"] for t in ("copa", "lambada")] == [3, 3]
    assert len(decisions) == 6 and all(len(d.loglikelihoods) == 1 for d in decisions if d.task == "lambada")
