"""Tokenizer folders under random corruption (metadata of wrong types, split patterns, ranks lines and bytes
re-hashed so the deeper checks are reached, symlinks and special files): load_tokenizer_folder accepts a folder that
then encodes any text and gives it back, or refuses it in one line."""
from tests.support.fuzz_loop import fuzz_seeds, reaches_checks, run_fuzz, template
from tests.support.fuzz_pipeline import mutate_tokenizer, use_tokenizer


def test_tokenizer_folder_fuzz(material, tmp_path):
    seeds = fuzz_seeds(1_000, 300)
    outcomes = run_fuzz("tokenizer", seeds, template(tmp_path, tok=material.tok), mutate_tokenizer,
                        lambda folder: use_tokenizer(folder / "tok"), tmp_path / "cases")
    assert reaches_checks(outcomes, "refused", seeds), outcomes
