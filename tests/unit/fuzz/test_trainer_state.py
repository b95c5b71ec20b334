"""trainer_state.json under random corruption (wrong types, missing keys, absurd counts, NaN, deep nesting, a
mixture's state, symlinks and special files): a resume (its checks, tokenizer, loader position and next batch), the
model card and the sampler's tokenizer lookup accept it or refuse it in one line."""
from model.checkpoint.weights import load_model
from tests.support.fuzz_loop import fuzz_seeds, reaches_checks, run_fuzz, template
from tests.support.fuzz_model import mutate_trainer_state, use_trainer_state


def test_trainer_state_fuzz(material, tmp_path):
    model = load_model(material.run)
    seeds = fuzz_seeds(5_000, 400)
    outcomes = run_fuzz("trainer_state", seeds, template(tmp_path, run=material.run),
                        mutate_trainer_state, lambda folder: use_trainer_state(folder / "run", material.shards, model),
                        tmp_path / "cases")
    assert reaches_checks(outcomes, "refused", seeds), outcomes
