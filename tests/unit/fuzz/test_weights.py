"""Weights folders under random corruption (config.json of wrong types and absurd sizes, safetensors headers that
lie, integer dtypes, NaN weights, flipped and cut bytes, symlinks and special files): loading, finding the tokenizer
and sampling accept the checkpoint or refuse it in one line, and nothing the size of a lying config is allocated."""
from tests.support.fuzz_loop import fuzz_seeds, reaches_checks, run_fuzz, template
from tests.support.fuzz_model import mutate_weights, use_weights


def test_weights_fuzz(material, tmp_path):
    seeds = fuzz_seeds(4_000, 250)
    outcomes = run_fuzz("weights", seeds, template(tmp_path, run=material.run), mutate_weights,
                        lambda folder: use_weights(folder / "run"), tmp_path / "cases")
    assert reaches_checks(outcomes, "refused", seeds), outcomes
