"""Shard-folder manifests under random corruption (wrong types, missing keys, huge numbers, deep nesting, entries
naming files outside the folder, symlinks and special files, a damaged tokenizer/ copy): the checked folder, inspect
and the training loader accept the folder or refuse it in one line."""
from tests.support.fuzz_loop import fuzz_seeds, reaches_checks, run_fuzz, template
from tests.support.fuzz_pipeline import mutate_manifest, use_shard_folder


def test_manifest_fuzz(material, tmp_path):
    seeds = fuzz_seeds(2_000, 300)
    outcomes = run_fuzz("manifest", seeds, template(tmp_path, shards=material.shards),
                        mutate_manifest, lambda folder: use_shard_folder(folder / "shards"), tmp_path / "cases")
    assert reaches_checks(outcomes, "refused", seeds), outcomes
