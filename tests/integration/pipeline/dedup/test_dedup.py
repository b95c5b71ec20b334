"""Deduplication in `pipeline.prepare`: exact, URL and MinHash near duplicates planted into real web documents.

Real datatrove stages and the real tokenizer; the documents are Common Crawl pages from ../shared/data (dclm).
"""
import gzip
import json
import random

import pytest

from pipeline.dedup import DedupConfig
from pipeline.prepare import main as prepare_main
from pipeline.shards import read_manifest
from tests.support import REPO_ROOT
from tests.support.shards import decoded_documents


@pytest.fixture(scope="module")
def web_pages(shared_data) -> list[str]:
    with open(shared_data / "text" / "dclm_majority_data.jsonl") as f:
        texts = [json.loads(line)["text"] for line in f]
    return [t for t in texts if len(t.split()) >= 200]  # long enough for a word edit to leave it a near duplicate


def near_copy(text: str, seed: int, every: int = 100) -> str:
    """The page with one word in `every` replaced: MinHash (Jaccard) similarity about 0.9."""
    rng, words = random.Random(seed), text.split(" ")
    for position in rng.sample(range(len(words)), max(1, len(words) // every)):
        words[position] = f"edited{rng.randrange(10**6)}"
    return " ".join(words)


@pytest.fixture(scope="module")
def planted(web_pages, tmp_path_factory):
    """60 distinct pages (a.jsonl) and, in a later file, copies of some of them (b.jsonl)."""
    originals = web_pages[:60]
    folder = tmp_path_factory.mktemp("planted")
    records = [{"text": t, "id": f"orig-{i}", "url": f"https://example.org/page/{i}"} for i, t in enumerate(originals)]
    copies, expected = [], {}  # expected: copy id -> (id of the original kept, reason)
    for i in range(4):  # verbatim copies
        copies.append({"text": originals[i], "id": f"exact-{i}", "url": f"https://mirror.example.net/{i}"})
        expected[f"exact-{i}"] = (f"orig-{i}", "exact")
    shouted = "  " + originals[4].upper().replace(" ", "   ") + "\n"  # same text once normalised
    copies.append({"text": shouted, "id": "exact-4"})
    expected["exact-4"] = ("orig-4", "exact")
    for i in range(10, 15):  # near duplicates
        copies.append({"text": near_copy(originals[i], seed=i), "id": f"near-{i}"})
        expected[f"near-{i}"] = (f"orig-{i}", "near")
    # another page, unrelated in content, at an already seen URL (scheme/host case and #fragment differ)
    copies.append({"text": web_pages[70], "id": "url-20", "url": "HTTPS://Example.ORG/page/20#comments"})
    expected["url-20"] = ("orig-20", "url")
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in copies))
    return folder, originals, copies, expected


def removed_records(out) -> dict[str, dict]:
    records = {}
    for path in sorted((out / "duplicates").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                record = json.loads(line)
                records[record["id"]] = record
    return records


def test_planted_duplicates_are_removed_and_the_originals_kept(planted, tmp_path):
    folder, originals, copies, expected = planted
    shards = {}
    for tasks in ("1", "3"):
        out = tmp_path / f"out{tasks}"
        prepare_main(["--input", str(folder), "--output", str(out), "--tasks", tasks, "--val-tokens", "2000"])
        manifest = read_manifest(out)
        # Every original survives (none of them is a duplicate of another), and no copy does.
        assert sorted(decoded_documents(out)) == sorted(originals)
        assert manifest["dedup"]["enabled"] and manifest["dedup"]["removed"] == {"exact": 5, "url": 1, "near": 5}
        assert manifest["dedup"]["config"] == DedupConfig().as_dict()  # FineWeb's: 5-grams, 14 x 8, 64-bit
        # Every removed document is kept aside, whole, with the id of the document kept in its place.
        removed = removed_records(out)
        assert {i: (r["metadata"]["duplicate_of"], r["metadata"]["dedup_reason"]) for i, r in removed.items()} \
            == expected
        assert {i: r["text"] for i, r in removed.items()} == {c["id"]: c["text"] for c in copies}
        shards[tasks] = [entry["sha256"] for entry in manifest["shards"]]
    assert shards["1"] == shards["3"]  # the earliest copy is kept whatever the split into tasks


def test_no_dedup_keeps_every_copy(planted, tmp_path):
    folder, originals, copies, _ = planted
    out = tmp_path / "out"
    prepare_main(["--input", str(folder), "--output", str(out), "--no-dedup", "--val-tokens", "0"])
    assert sorted(decoded_documents(out)) == sorted(originals + [c["text"] for c in copies])
    assert read_manifest(out)["dedup"] == {"enabled": False} and not (out / "duplicates").exists()


def test_recipe_dedup_section(planted, tmp_path, capsys):
    folder, originals, copies, expected = planted
    recipe = tmp_path / "exact-only.yaml"
    recipe.write_text("name: exact-only\nsteps: []\ndedup:\n  minhash: false\n  url: false\n")
    out = tmp_path / "out"
    prepare_main(["--input", str(folder), "--output", str(out), "--recipe", str(recipe), "--val-tokens", "0"])
    survivors = originals + [c["text"] for c in copies if expected[c["id"]][1] != "exact"]
    assert sorted(decoded_documents(out)) == sorted(survivors)
    assert read_manifest(out)["dedup"]["removed"] == {"exact": 5, "url": 0, "near": 0}

    recipe.write_text("name: bad\nsteps: []\ndedup:\n  n_grams: five\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        prepare_main(["--input", str(folder), "--output", str(tmp_path / "bad"), "--recipe", str(recipe)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: {recipe}: dedup.n_grams must be int")
    assert not (tmp_path / "bad").exists()

    recipe.write_text("name: bad\nsteps: [url_filter]\ndedup:\n  after: language_filter\n")
    with pytest.raises(SystemExit) as exit_info:
        prepare_main(["--input", str(folder), "--output", str(tmp_path / "bad"), "--recipe", str(recipe)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"error: {recipe}: dedup.after must name an enabled step of the recipe (one of: url_filter), "
                     "got 'language_filter'"]
    assert not (tmp_path / "bad").exists()


def test_run_killed_during_dedup_resumes_to_the_same_shards(tmp_path):
    """SIGKILL the whole run once a dedup stage has started; the same command finishes it, reusing the finished
    stages and tasks, and gives the shards of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    repo = REPO_ROOT
    args = ["--limit", "4000", "--tasks", "4", "--val-tokens", "5000", "--shard-tokens", "50000"]
    out, clean = tmp_path / "out", tmp_path / "clean"
    process = subprocess.Popen([sys.executable, "-m", "pipeline.prepare", *args, "--output", str(out)], cwd=repo,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    work = out / ".prepare-work"
    first_task_signed = work / "logs" / "dedup-signatures" / "completions" / "00000"
    deadline = time.time() + 240
    while not first_task_signed.exists():
        assert time.time() < deadline and process.poll() is None, "the run never reached the dedup stage"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert json.loads((work / "stages" / "read.json").read_text())["done"]
    assert not (out / "manifest.json").exists()

    resumed = prepare_and_read(args + ["--output", str(out)])
    assert resumed["resumed"] and resumed["dedup"]["enabled"]
    assert [e["sha256"] for e in resumed["shards"]] == [e["sha256"] for e in prepare_and_read(
        args + ["--output", str(clean)])["shards"]]
    assert not work.exists()


def prepare_and_read(args: list[str]) -> dict:
    prepare_main(args)
    return read_manifest(args[args.index("--output") + 1])
