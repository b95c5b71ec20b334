"""The global shuffle before tokenization through whole prepares with real datatrove runs (the stages' skip/resume/redo
rules: tests/unit/pipeline/runner/test_stages.py)."""
import json

import pytest

from pipeline.prepare import main as prepare_main
from pipeline.shards import read_manifest
from tests.support.shards import decoded_documents


@pytest.fixture(scope="module")
def web_input(shared_data, tmp_path_factory):
    """150 real Common Crawl pages in two jsonl files, in a known source order."""
    with open(shared_data / "text" / "dclm_majority_data.jsonl") as f:
        texts = [json.loads(line)["text"] for line in f][:150]
    folder = tmp_path_factory.mktemp("web")
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:90]))
    # ids 0, 1, ...: a falsy id must survive the stage files (else it would depend on the split into tasks)
    (folder / "b.jsonl").write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts[90:])))
    return folder, texts


def prepared(folder, out, *options) -> tuple[list[str], list[str]]:
    prepare_main(["--input", str(folder), "--output", str(out), "--no-dedup", "--val-tokens", "3000",
                  "--shard-tokens", "20000", *options])
    return decoded_documents(out), [entry["sha256"] for entry in read_manifest(out)["shards"]]


def test_shuffle_is_a_seeded_permutation_of_the_whole_corpus(web_input, tmp_path):
    folder, texts = web_input
    first, first_shards = prepared(folder, tmp_path / "seed1", "--seed", "1")
    other, _ = prepared(folder, tmp_path / "seed2", "--seed", "2")
    assert sorted(first) == sorted(texts) and sorted(other) == sorted(texts)  # the same multiset of documents
    assert first != texts and other != first  # not the source order, and another seed gives another order
    # Documents of both input files are spread over the whole output (a global, not a per-file, shuffle).
    from_b = [i for i, text in enumerate(first) if text in set(texts[90:])]
    assert min(from_b) < 30 and max(from_b) > 120
    assert read_manifest(tmp_path / "seed1")["shuffle"]["seed"] == 1

    # The same seed gives byte-identical shards: on a rerun in place, with other task and bucket counts.
    _, again = prepared(folder, tmp_path / "seed1", "--seed", "1")
    _, split_differently = prepared(folder, tmp_path / "tasks3", "--seed", "1", "--tasks", "3",
                                    "--shuffle-buckets", "5")
    assert again == first_shards and split_differently == first_shards
