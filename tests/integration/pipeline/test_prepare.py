"""`python -m pipeline.prepare` end to end with real datatrove execution and the real GPT-2 tokenizer.

The central check: decoding the shards and splitting at end-of-text gives back the source documents exactly.
"""
import gzip
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipeline.read.corpora import sample_corpus_path
from pipeline.inspect import main as inspect_main
from pipeline.prepare import main as prepare_main
from pipeline.shards import read_manifest, shard_paths
from tests.support.shards import decoded_documents


def sample_documents() -> list[str]:
    return [entry["extract"] for entry in json.loads(sample_corpus_path().read_text()).values()]


def test_sample_corpus_round_trip(tmp_path, capsys):
    out = tmp_path / "sample"
    prepare_main(["--limit", "400", "--val-tokens", "4000", "--shard-tokens", "20000", "--output", str(out)])
    manifest = read_manifest(out)
    documents = decoded_documents(out)
    assert sorted(documents) == sorted(sample_documents()[:400])  # every document, once (no duplicates there)
    assert documents != sample_documents()[:400]  # but globally shuffled, not in source order
    assert manifest["tokenizer"] == "gpt2" and manifest["vocab_size"] == 50257 and manifest["eot_token"] == 50256
    assert manifest["totals"]["documents"] == 400 and manifest["skipped"] == {}
    assert manifest["command"].startswith("python -m pipeline.prepare --limit 400")
    assert set(manifest["versions"]) >= {"datatrove", "tiktoken", "numpy"}
    val, train = manifest["shards"][0], manifest["shards"][1:]
    assert val["file"] == "val_000000.bin" and 4000 <= val["tokens"] < 4000 + 2000  # whole documents
    assert [e["file"] for e in train] == [f"train_{i:06d}.bin" for i in range(1, len(train) + 1)]
    assert all(e["tokens"] == 20000 for e in train[:-1]) and 0 < train[-1]["tokens"] <= 20000
    assert sum(e["documents"] for e in manifest["shards"]) == 400
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [e["file"] for e in manifest["shards"]] + ["manifest.json", "logs", ".gptstack.json"])  # no work folder left
    assert "skipped records: none" in capsys.readouterr().out

    inspect_main([str(out), "--tokens", "40"])
    shown = capsys.readouterr().out
    assert "train_000001.bin" in shown and "BAD" not in shown
    assert documents[0][:60].replace("\n", " ") in shown.replace("\n", " ")  # the first shard, decoded


def test_small_corpus_keeps_most_text_for_training(tmp_path):
    out = tmp_path / "s"
    prepare_main(["--limit", "200", "--output", str(out)])  # default --val-tokens 10M > the whole corpus
    totals = read_manifest(out)["totals"]
    assert 0 < totals["val_tokens"] <= 0.1 * totals["tokens"] + 2000
    assert totals["train_tokens"] >= 0.85 * totals["tokens"]


@pytest.fixture(scope="module")
def web_texts(shared_data):
    """Real Common Crawl documents (dclm's human-labelled sample)."""
    with open(shared_data / "text" / "dclm_majority_data.jsonl") as f:
        return [json.loads(line)["text"] for line in f][:240]


def fineweb_table(texts: list[str], dump: str) -> pa.Table:
    """A parquet table with FineWeb's real columns."""
    n = len(texts)
    return pa.table({
        "text": texts, "id": [f"<urn:uuid:{i:08d}>" for i in range(n)], "dump": [dump] * n,
        "url": [f"https://example.org/{i}" for i in range(n)], "date": ["2024-03-01T00:00:00Z"] * n,
        "file_path": [f"s3://commoncrawl/crawl-data/{dump}/segments/x.warc.gz"] * n, "language": ["en"] * n,
        "language_score": [0.9] * n, "token_count": [len(t) // 4 for t in texts]})


@pytest.mark.parametrize("corpus,subset,folder", [("fineweb", "sample-10BT", "sample/10BT"),
                                                  ("fineweb-edu", "CC-MAIN-2024-10", "data/CC-MAIN-2024-10")])
def test_hub_corpus_from_local_mirror(tmp_path, web_texts, corpus, subset, folder):
    mirror = tmp_path / "mirror"
    (mirror / folder).mkdir(parents=True)
    pq.write_table(fineweb_table(web_texts[:100], "CC-MAIN-2024-10"), mirror / folder / "000_00000.parquet")
    pq.write_table(fineweb_table(web_texts[100:], "CC-MAIN-2024-10"), mirror / folder / "001_00000.parquet")
    out = tmp_path / "out"
    prepare_main(["--corpus", corpus, "--subset", subset, "--hub-mirror", str(mirror), "--output", str(out),
                  "--val-tokens", "5000", "--tasks", "2"])
    assert sorted(decoded_documents(out)) == sorted(web_texts)
    manifest = read_manifest(out)
    assert manifest["dedup"] == {"enabled": False}  # FineWeb was deduplicated on the Hub: off unless --dedup
    assert manifest["corpus"] == corpus and manifest["source"]["subset"] == subset


def test_local_files_and_same_shards_for_any_task_count(tmp_path, web_texts):
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.jsonl").write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(web_texts[:50]))
                                  + '{"text": "unterminated\n')
    with gzip.open(data / "b.jsonl.gz", "wt") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in web_texts[50:120])
        f.write(json.dumps({"text": ""}) + "\n")
    (data / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(
        "".join(json.dumps({"text": t}) + "\n" for t in web_texts[120:150]).encode()))
    pq.write_table(fineweb_table(web_texts[150:], "local"), data / "d.parquet")
    runs = {}
    for tasks in ("1", "3"):
        out = tmp_path / f"out{tasks}"
        prepare_main(["--input", str(data), "--output", str(out), "--tasks", tasks, "--shard-tokens", "30000",
                      "--val-tokens", "3000"])
        runs[tasks] = read_manifest(out)
    assert sorted(decoded_documents(tmp_path / "out1")) == sorted(web_texts)
    assert runs["1"]["skipped"] == runs["3"]["skipped"] == {"malformed_json": 1, "empty_document": 1}
    assert [e["sha256"] for e in runs["1"]["shards"]] == [e["sha256"] for e in runs["3"]["shards"]]
    assert len(shard_paths(tmp_path / "out1", "train")) > 1


def test_rerun_replaces_earlier_output_and_drops_stale_shards(tmp_path):
    out = tmp_path / "s"
    prepare_main(["--limit", "300", "--shard-tokens", "5000", "--val-tokens", "1000", "--output", str(out)])
    many = len(read_manifest(out)["shards"])
    prepare_main(["--limit", "100", "--shard-tokens", "5000", "--val-tokens", "1000", "--output", str(out)])
    manifest = read_manifest(out)
    assert len(manifest["shards"]) < many
    assert sorted(p.name for p in out.glob("*.bin")) == sorted(e["file"] for e in manifest["shards"])
    assert sorted(decoded_documents(out)) == sorted(sample_documents()[:100])


def test_cli_help_explains_every_option():
    result = subprocess.run([sys.executable, "-m", "pipeline.prepare", "--help"], capture_output=True, text=True,
                            check=True)
    for option in ("--corpus", "--input", "--subset", "--hub-mirror", "--text-key", "--output", "--shard-tokens",
                   "--val-tokens", "--tokenizer", "--workers", "--tasks", "--limit", "sample", "fineweb-edu",
                   "--rehydrate", "fineweb-2", "fineweb-edu-chinese", "cci3-hq"):
        assert option in result.stdout
