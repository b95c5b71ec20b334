"""The global shuffle before tokenization, and the stages' skip/resume/redo rules, with real datatrove runs."""
import json

import pytest
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor

from pipeline.prepare import main as prepare_main
from pipeline.shards import read_manifest
from pipeline.tokens.shuffle import shuffle_stages
from pipeline.runner.stages import StageMismatchError, StageReader, run_stages, stage_writer
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


def write_documents(folder, texts: list[str], tasks: int) -> None:
    def documents(data, rank, world_size):
        share = texts[rank * len(texts) // world_size:(rank + 1) * len(texts) // world_size]
        yield from (Document(text=text, id=f"doc-{rank}-{i}") for i, text in enumerate(share))

    LocalPipelineExecutor([documents, stage_writer(folder)],
                          tasks=tasks, workers=1, logging_dir=str(folder.parent / "write-logs")).run()


def shuffled_ids(folder, tasks: int) -> list[str]:
    return [doc.id for rank in range(tasks) for doc in StageReader(folder)(None, rank, tasks)]


def test_stages_are_skipped_when_done_resumed_when_started_and_redone_when_changed(web_input, tmp_path):
    _, texts = web_input
    work, tasks = tmp_path / "work", 2
    write_documents(work / "documents", texts[:40], tasks)
    executed = []

    def run_stage(stage, logging_dir, resume):
        executed.append((stage.name, resume))
        executor = LocalPipelineExecutor(stage.steps, tasks=stage.tasks, workers=1, logging_dir=logging_dir,
                                         skip_completed=resume)
        return executor.run(), 0.0

    def run(seed, restart=False):
        executed.clear()
        stages = shuffle_stages(work / "documents", work / "shuffle", tasks, seed=seed, buckets=4)
        runs = run_stages(stages, work, run_stage, restart=restart)
        return {name: r.status for name, r in runs.items()}, shuffled_ids(work / "shuffle" / "documents", tasks)

    status, order = run(seed=7)
    assert status == {"shuffle-scatter": "ran", "shuffle-sort": "ran"}
    assert sorted(order) == sorted(f"doc-{r}-{i}" for r in range(tasks) for i in range(20))
    assert run(seed=7) == ({"shuffle-scatter": "skipped", "shuffle-sort": "skipped"}, order) and executed == []

    # An interrupted sort (its record says started, not done; one task finished): the rerun resumes it.
    record = work / "stages" / "shuffle-sort.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "done": False}))
    (work / "logs" / "shuffle-sort" / "completions" / "00001").unlink()
    status, resumed_order = run(seed=7)
    assert status == {"shuffle-scatter": "skipped", "shuffle-sort": "resumed"} and resumed_order == order
    assert executed == [("shuffle-sort", True)]

    # Another seed changes the scatter stage's fingerprint, hence the sort's: refused before any work (old outputs
    # must not mix with new ones) unless told to restart; then both are redone from scratch.
    with pytest.raises(StageMismatchError, match="stage shuffle-scatter: seed changed.*--restart"):
        run(seed=8)
    assert executed == []
    status, new_order = run(seed=8, restart=True)
    assert status == {"shuffle-scatter": "ran", "shuffle-sort": "ran"} and executed == [
        ("shuffle-scatter", False), ("shuffle-sort", False)]
    assert sorted(new_order) == sorted(order) and new_order != order
