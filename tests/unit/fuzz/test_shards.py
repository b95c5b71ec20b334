"""Token shards under random corruption (header fields, truncation, flipped bytes, token ids past the vocabulary,
the manifest's checksum and count re-written to match, symlinks and special files): inspect (with and without
--no-verify), the checked folder and the training loader accept the folder or refuse it in one line."""
from tests.support.fuzz_loop import fuzz_seeds, reaches_checks, run_fuzz, template
from tests.support.fuzz_pipeline import mutate_shards, use_shard_folder


def test_shard_fuzz(material, tmp_path):
    seeds = fuzz_seeds(3_000, 250)
    outcomes = run_fuzz("shards", seeds, template(tmp_path, shards=material.shards),
                        mutate_shards, lambda folder: use_shard_folder(folder / "shards"), tmp_path / "cases")
    assert reaches_checks(outcomes, "refused", seeds), outcomes
