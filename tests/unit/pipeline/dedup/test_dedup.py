"""Deduplication's parts in process: which corpora dedup by default, how duplicate pairs chain into clusters that
keep the earliest document, and the options' help. Whole prepares with planted duplicates:
tests/integration/pipeline/dedup/."""
import json
import struct

import pytest

from pipeline.dedup import dedup_enabled
from pipeline.dedup.steps import DedupClusters, removals_path


def test_dedup_defaults_per_corpus():
    assert dedup_enabled(None, "local") and dedup_enabled(None, "sample") and dedup_enabled(None, "commoncrawl")
    assert not dedup_enabled(None, "fineweb") and not dedup_enabled(None, "fineweb-edu")
    assert dedup_enabled(True, "fineweb") and not dedup_enabled(False, "local")


def write_pairs(folder, pairs):
    folder.mkdir(parents=True)
    (folder / "00000_00.dups").write_bytes(b"".join(struct.pack("<4I", *pair) for pair in pairs))


def test_clusters_keep_the_earliest_document_and_name_it(tmp_path):
    """Pairs chain into clusters (a~b exact, b~c near: one cluster), the earliest position is kept whatever the
    order the pairs come in, and each removed document names it."""
    ids = tmp_path / "ids"
    ids.mkdir()
    for rank, names in enumerate([["a0", "a1", "a2"], ["b0", "b1"]]):
        (ids / f"{rank:05d}.ids").write_text("".join(json.dumps(n) + "\n" for n in names))
    write_pairs(tmp_path / "exact", [(1, 1, 1, 0)])          # b1 = b0
    write_pairs(tmp_path / "near", [(1, 0, 0, 2), (0, 1, 1, 1)])  # b0 ~ a2, a1 ~ b1: one cluster {a1, a2, b0, b1}
    step = DedupClusters({"exact": str(tmp_path / "exact"), "near": str(tmp_path / "near")}, str(ids),
                         str(tmp_path / "out"), stage_tasks=2)
    list(step.run(None, 0, 1))
    lines = {rank: [json.loads(x) for x in removals_path(tmp_path / "out", rank).read_text().splitlines()]
             for rank in (0, 1)}
    assert lines[0] == [{"index": 2, "reason": "near", "kept_id": "a1", "kept_at": [0, 1]}]
    assert lines[1] == [{"index": 0, "reason": "exact", "kept_id": "a1", "kept_at": [0, 1]},
                        {"index": 1, "reason": "exact", "kept_id": "a1", "kept_at": [0, 1]}]


def test_cli_help_explains_the_dedup_and_shuffle_options(capsys):
    from pipeline.prepare import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for text in ("--dedup, --no-dedup", "--seed SEED", "--shuffle-buckets", "cci3-hq), which were deduplicated",
                 "OUTPUT/duplicates/"):
        assert text in shown
