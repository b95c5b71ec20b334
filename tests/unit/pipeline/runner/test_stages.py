"""The stages' skip/resume/redo rules (pipeline/runner/stages.py), on the shuffle's two stages run in process by
datatrove's local executor over real web pages."""
import json

import pytest
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor

from pipeline.runner.stages import StageMismatchError, StageReader, run_stages, stage_writer
from pipeline.tokens.shuffle import shuffle_stages


@pytest.fixture(scope="module")
def web_texts(shared_data) -> list[str]:
    """40 real Common Crawl pages."""
    with open(shared_data / "text" / "dclm_majority_data.jsonl") as f:
        return [json.loads(line)["text"] for line, _ in zip(f, range(40))]


def write_documents(folder, texts: list[str], tasks: int) -> None:
    def documents(data, rank, world_size):
        share = texts[rank * len(texts) // world_size:(rank + 1) * len(texts) // world_size]
        yield from (Document(text=text, id=f"doc-{rank}-{i}") for i, text in enumerate(share))

    LocalPipelineExecutor([documents, stage_writer(folder)],
                          tasks=tasks, workers=1, logging_dir=str(folder.parent / "write-logs")).run()


def shuffled_ids(folder, tasks: int) -> list[str]:
    return [doc.id for rank in range(tasks) for doc in StageReader(folder)(None, rank, tasks)]


def test_stages_are_skipped_when_done_resumed_when_started_and_redone_when_changed(web_texts, tmp_path):
    texts = web_texts
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
