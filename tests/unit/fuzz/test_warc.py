"""WARC files under random corruption (the real crawl's records with flipped, cut and inserted bytes, plain and
gzipped; spliced records whose Content-Length, Content-Encoding, chunking and charset lie, compression bombs;
symlinks and special files): the checked reader yields documents and counts what it skips, never raising, hanging
or holding more than its record bound."""
from collections import Counter

from tests.support.fuzz_loop import fuzz_seeds, reaches_checks, run_fuzz
from tests.support.fuzz_warc import build_warcs, mutate_warc, use_warc


def test_warc_fuzz(shared_data, tmp_path):
    template = tmp_path / "template"
    build_warcs(template / "warc", shared_data)
    seeds = fuzz_seeds(6_000, 300)
    counts = Counter()
    outcomes = run_fuzz("warc", seeds, template, mutate_warc, lambda folder: counts.update(use_warc(folder / "warc")),
                        tmp_path / "cases")
    assert reaches_checks(outcomes, "accepted", seeds), outcomes
    if len(seeds) >= 300:  # the damage the mutants carry is seen, counted under its reason, and pages still come out
        assert counts["documents_passed"] > 500 and counts["skipped_corrupt_file"] > 30, counts
        assert counts["skipped_too_large"] > 0 and counts["skipped_empty_file"] > 0, counts
