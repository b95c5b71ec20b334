"""model.sample's numbers are checked in one place (parse_args) and the sampler never divides by a denormal nor draws
from NaN (model/generate.py): a tiny temperature is greedy, non-finite logits are one GenerationError line."""
import pytest
import torch

from model.generate import MIN_TEMPERATURE, GenerationError, choose_next_token
from model.sample import parse_args


@pytest.mark.parametrize("option, fragment", [
    (["--temperature", "nan"], "--temperature must be a number from 0 to"),
    (["--temperature", "inf"], "--temperature must be a number from 0 to"),
    (["--temperature", "-1"], "--temperature must be a number from 0 to"),
    (["--top-k", "-3"], "--top-k must be at least 1"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["--top-p", "nan"], "--top-p must be in (0, 1]"),
    (["--repetition-penalty", "nan"], "--repetition-penalty must be > 0"),
    (["--repetition-penalty", "0"], "--repetition-penalty must be > 0"),
    (["--seed", "-1"], "-1 is outside 0..9223372036854775807"),
    (["--seed", str(2**70)], f"{2**70} is outside 0..9223372036854775807"),
    (["--seed", "1.5"], "'1.5' is not an integer"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be from 1 to"),
    (["--num-samples", "99999999"], "--num-samples must be from 1 to"),
])
def test_a_bad_number_is_one_line_and_exit_2(capsys, option, fragment):
    with pytest.raises(SystemExit) as exited:
        parse_args(["--checkpoint", "x", *option])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines


def test_the_edges_are_accepted():
    args = parse_args(["--checkpoint", "x", "--temperature", "1e-45", "--top-p", "1", "--seed", str(2**63 - 1)])
    assert (args.temperature, args.top_p, args.seed) == (1e-45, 1.0, 2**63 - 1)


def test_a_temperature_below_the_epsilon_is_greedy_not_a_division_by_a_denormal():
    torch.manual_seed(0)
    logits, idx = torch.randn(3, 50) * 30, torch.zeros(3, 1, dtype=torch.long)
    greedy = choose_next_token(logits, idx, temperature=0)
    for temperature in (1e-45, 1e-30, MIN_TEMPERATURE / 2):
        assert torch.equal(choose_next_token(logits, idx, temperature=temperature), greedy)
    assert torch.isinf(logits / 1e-45).any()  # what dividing would have given: softmax of inf - inf is NaN


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_non_finite_logits_are_a_generation_error(bad, temperature):
    logits = torch.zeros(1, 10)
    logits[0, 3] = bad
    with pytest.raises(GenerationError, match="NaN or infinite logits"):
        choose_next_token(logits, torch.zeros(1, 1, dtype=torch.long), temperature=temperature)


def test_logits_that_overflow_when_divided_are_a_generation_error():
    logits = torch.tensor([[3e38, -3e38, 0.0]])
    with pytest.raises(GenerationError, match="overflow"):
        choose_next_token(logits, torch.zeros(1, 1, dtype=torch.long), temperature=0.5)
