"""Fault injection against data preparation (issue 13): colliding runs, killed parents, truncated and garbled inputs,
bad options, token ids outside the vocabulary, a validation split past its cap, a full disk, and a busy machine.
Real `python -m pipeline.*` processes, real files, real signals.

Cases that already passed before issue 13 and live elsewhere (not repeated here): malformed JSON, invalid UTF-8, an
empty document or a record without text, a truncated .jsonl.gz, kill -9 of prepare in its tokenize and shard-writing
phases then a byte-identical resume (tests/test_prepare_bad_input.py, tests/test_prepare_resume.py); a garbled WARC
record header and a truncated .warc.gz read by the WARC reader (tests/test_clean_warc.py).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import SHARED_DATA
from tests.support.faults import (REPO_ROOT, alive, assert_one_line_error, descendants, error_lines, kill_tree,
                                  python_module, run_on_small_disk, set_token, tree_digest, truncate, wait_for)

CRAWL = SHARED_DATA / "crawl"
TEXT = SHARED_DATA / "text" / "dclm_majority_data.jsonl"
DOLMA = f"{CRAWL / 'dolma-sample-0000.warc.gz'},{CRAWL / 'dolma-sample-0001.warc.gz'}"
# Real web pages through the whole chain (extraction, FineWeb's filters, language ID) on two workers.
WARC_COMMAND = ["--corpus", "commoncrawl", "--input", DOLMA, "--workers", "2", "--no-dedup", "--val-tokens", "2000"]
# A sample-corpus run long enough to be caught in the middle (4 tasks, one at a time).
SLOW_COMMAND = ["--limit", "3000", "--tasks", "4", "--workers", "1", "--no-dedup", "--val-tokens", "5000",
                "--shard-tokens", "60000"]


def prepare(*args, timeout: int = 600) -> subprocess.CompletedProcess:
    return python_module("pipeline.prepare", *args, timeout=timeout)


def start_prepare(*args, output=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.prepare", *map(str, args)], cwd=REPO_ROOT,
                            stdout=output, stderr=output, text=True, start_new_session=True)


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def shard_digests(folder: Path) -> list[tuple[str, str]]:
    return [(e["file"], e["sha256"]) for e in manifest(folder)["shards"]]


def documents(n: int, start: int = 0) -> list[str]:
    texts = [json.loads(line)["text"] for line in TEXT.read_text().splitlines() if line.strip()]
    return texts[start:start + n]


def jsonl(texts: list[str], key: str = "text") -> bytes:
    return "".join(json.dumps({key: t}) + "\n" for t in texts).encode()


def warc_pages(n: int) -> list[tuple[str, bytes]]:
    from warcio.archiveiterator import ArchiveIterator

    pages = []
    with open(CRAWL / "news-200.warc.gz", "rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type == "response":
                pages.append((record.rec_headers.get_header("WARC-Target-URI"), record.content_stream().read()))
                if len(pages) == n:
                    return pages
    raise AssertionError("not enough pages")


def write_warc(path: Path, pages: list[tuple[str, bytes]], gzip_records: bool) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gzip_records)
        for url, payload in pages:
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(payload),
                                                          http_headers=headers))


@pytest.fixture(scope="session")
def slow_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fault-slow") / "out"
    assert_ok(prepare(*SLOW_COMMAND, "--output", out))
    return out


@pytest.fixture(scope="session")
def warc_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fault-warc") / "out"
    assert_ok(prepare(*WARC_COMMAND, "--output", out))
    return out


@pytest.fixture
def shard_copy(sample_shards, tmp_path) -> Path:
    """A copy of the shared prepared sample folder (tests/integration/conftest.py) for a test to damage."""
    return Path(shutil.copytree(sample_shards, tmp_path / "shards"))


# ---- 2: two prepare runs into one output folder ------------------------------------------------------------------
def test_second_prepare_into_a_busy_folder_refuses_and_the_first_finishes(slow_reference, tmp_path):
    out = tmp_path / "out"
    first = start_prepare(*SLOW_COMMAND, "--output", out)
    try:
        wait_for(lambda: (out / ".prepare-work").is_dir(), 240, "the first run's work folder", first)
        second = prepare(*SLOW_COMMAND, "--output", out)
        # still running, or finished on its own while the refused run started (a busy machine): never ended by it
        assert first.poll() in (None, 0), "the second run ended the first"
        assert_one_line_error(second, str(out))
        stdout, stderr = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            kill_tree(first)
    assert first.returncode == 0, stdout[-2000:] + stderr[-3000:]
    assert shard_digests(out) == shard_digests(slow_reference)  # untouched by the refused run
    assert not (out / ".prepare-work").exists()


# ---- 6: killing the main process leaves no worker behind ------------------------------------------------------
def test_killed_main_process_leaves_no_workers_and_the_rerun_resumes(warc_reference, tmp_path):
    out = tmp_path / "out"
    # no pipes: an orphaned worker would hold them open, and this test is about the workers themselves
    main = start_prepare(*WARC_COMMAND, "--output", out, output=subprocess.DEVNULL)
    try:
        # both workers of the read (+ clean) stage are running
        wait_for(lambda: (out / ".prepare-work").is_dir() and len(descendants(main.pid)) >= 2, 240,
                 "the read stage's workers", main)
        time.sleep(1.0)
        workers = descendants(main.pid)
        os.kill(main.pid, signal.SIGKILL)  # the main process only, as an OOM killer or `kill -9 PID` does
        main.wait(timeout=60)
        deadline = time.time() + 60
        while any(alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.2)
        left = [pid for pid in workers if alive(pid)]
    finally:
        for pid in descendants(main.pid):
            os.kill(pid, signal.SIGKILL)
    try:
        assert not left, f"workers {left} outlived their killed parent by a minute"
    finally:
        for pid in [p for p in workers if alive(p)]:
            os.kill(pid, signal.SIGKILL)  # pids this test's run started
    assert_ok(prepare(*WARC_COMMAND, "--output", out))
    assert shard_digests(out) == shard_digests(warc_reference)


# ---- 3 (inspect part): token ids outside the vocabulary ----------------------------------------------------------
@pytest.mark.parametrize("token", [50300, 60000])
def test_inspect_finds_a_token_outside_the_vocabulary(shard_copy, token):
    shard = manifest(shard_copy)["shards"][-1]["file"]
    set_token(shard_copy, shard, 100, token)  # header, size and sha256 all valid
    assert_one_line_error(python_module("pipeline.inspect", shard_copy), shard, str(token))


# ---- shards: what already gave one line, from the command line -------------------------------------------------
def test_inspect_reports_wrong_magic_truncation_and_a_corrupt_manifest(shard_copy, tmp_path):
    shards = [e["file"] for e in manifest(shard_copy)["shards"]]
    damaged = Path(shutil.copytree(shard_copy, tmp_path / "magic"))
    raw = bytearray((damaged / shards[0]).read_bytes())
    raw[0:4] = (4242).to_bytes(4, "little")
    (damaged / shards[0]).write_bytes(bytes(raw))
    assert_one_line_error(python_module("pipeline.inspect", damaged), shards[0])
    damaged = Path(shutil.copytree(shard_copy, tmp_path / "cut"))
    truncate(damaged / shards[-1], 0.7)
    assert_one_line_error(python_module("pipeline.inspect", damaged), shards[-1])
    (shard_copy / "manifest.json").write_text('{"format": "gptstack-shards", "shards": [')
    assert_one_line_error(python_module("pipeline.inspect", shard_copy), "manifest.json")


# ---- 4: truncated and garbled compressed input -----------------------------------------------------------------
def test_truncated_zst_is_a_corrupt_file_small_or_large(tmp_path):
    import zstandard

    small = zstandard.ZstdCompressor().compress(jsonl(documents(3)))
    (tmp_path / "small.jsonl.zst").write_bytes(small[:len(small) // 2])
    result = prepare("--input", tmp_path / "small.jsonl.zst", "--output", tmp_path / "o1", "--no-dedup",
                     "--val-tokens", "0")
    assert result.returncode == 2  # nothing could be read at all
    assert f"{tmp_path / 'small.jsonl.zst'}:" in result.stderr and "corrupt or truncated" in result.stderr

    large = zstandard.ZstdCompressor().compress(jsonl(documents(400)))
    (tmp_path / "large.jsonl.zst").write_bytes(large[:len(large) // 2])
    result = prepare("--input", tmp_path / "large.jsonl.zst", "--output", tmp_path / "o2", "--no-dedup",
                     "--val-tokens", "0")
    assert_ok(result)
    assert manifest(tmp_path / "o2")["skipped"] == {"corrupt_file": 1}  # not a malformed last line
    assert "corrupt or truncated" in result.stderr


def test_plain_warc_cut_inside_a_record_keeps_no_partial_page(tmp_path):
    pages = warc_pages(3)
    write_warc(tmp_path / "two.warc", pages[:2], gzip_records=False)
    write_warc(tmp_path / "cut.warc", pages, gzip_records=False)
    raw = (tmp_path / "cut.warc").read_bytes()
    third = raw.index(b"WARC/1.0", raw.index(b"WARC/1.0", 10) + 10)
    (tmp_path / "cut.warc").write_bytes(raw[:third + (len(raw) - third) // 2])  # half of page 3
    common = ["--corpus", "commoncrawl", "--recipe", "none", "--no-dedup", "--val-tokens", "0"]
    assert_ok(prepare(*common, "--input", tmp_path / "two.warc", "--output", tmp_path / "two"))
    result = prepare(*common, "--input", tmp_path / "cut.warc", "--output", tmp_path / "cut")
    assert_ok(result)
    cut, two = manifest(tmp_path / "cut"), manifest(tmp_path / "two")
    assert cut["totals"]["documents"] == two["totals"]["documents"]  # the half page is not a document
    assert cut["totals"]["tokens"] == two["totals"]["tokens"]
    assert cut["skipped"] == {"corrupt_file": 1}


def test_truncated_warc_gz_is_reported_on_the_console_and_in_the_manifest(tmp_path):
    data = (CRAWL / "news-200.warc.gz").read_bytes()
    (tmp_path / "cut.warc.gz").write_bytes(data[:400_000])  # cut inside a gzip member
    result = prepare("--corpus", "commoncrawl", "--input", tmp_path / "cut.warc.gz", "--recipe", "none",
                     "--no-dedup", "--val-tokens", "0", "--output", tmp_path / "out")
    assert_ok(result)
    assert manifest(tmp_path / "out")["skipped"].get("corrupt_file") == 1
    skipped_line = next(line for line in result.stdout.splitlines() if "skipped" in line and "records" in line)
    assert "none" not in skipped_line and "corrupt" in skipped_line, skipped_line


def test_garbled_warc_record_header_keeps_the_pages_before_it(tmp_path):
    pages = warc_pages(3)
    write_warc(tmp_path / "one.warc", pages[:1], gzip_records=False)
    write_warc(tmp_path / "garbled.warc", pages, gzip_records=False)
    raw = (tmp_path / "garbled.warc").read_bytes()
    second = raw.index(b"WARC/1.0", 10)
    (tmp_path / "garbled.warc").write_bytes(raw[:second] + b"GARBAGE!" + raw[second + 8:])
    common = ["--corpus", "commoncrawl", "--recipe", "none", "--no-dedup", "--val-tokens", "0"]
    assert_ok(prepare(*common, "--input", tmp_path / "one.warc", "--output", tmp_path / "one"))
    result = prepare(*common, "--input", tmp_path / "garbled.warc", "--output", tmp_path / "garbled")
    assert_ok(result)
    assert manifest(tmp_path / "garbled")["totals"]["documents"] == manifest(tmp_path / "one")["totals"]["documents"]
    assert manifest(tmp_path / "garbled")["skipped"] == {"corrupt_file": 1}


# ---- 5: language codes -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code, closest", [("eng", "en"), ("zz", None), ("en,fra", "fr")])
def test_unknown_language_code_is_one_line(tmp_path, code, closest):
    bad = code.split(",")[-1]
    result = prepare("--limit", "20", "--languages", code, "--output", tmp_path / "out")
    line = assert_one_line_error(result, bad)
    if closest:
        assert re.search(rf"\b{closest}\b", line.split(bad, 1)[1]), line  # the closest valid codes follow
    assert not (tmp_path / "out").exists()
    (tmp_path / "in.jsonl").write_bytes(jsonl(documents(3)))
    result = python_module("pipeline.clean", "--input", tmp_path / "in.jsonl", "--output", tmp_path / "clean",
                           "--languages", code)
    assert_one_line_error(result, bad)


# ---- 9: the validation split's cap ---------------------------------------------------------------------------------
def test_one_huge_document_does_not_become_the_validation_split(tmp_path):
    from pipeline.tokenizer import get_tokenizer

    small = documents(5)
    huge = " ".join(documents(300, start=100))  # one document of ~100k tokens among five small ones
    (tmp_path / "in.jsonl").write_bytes(jsonl(small + [huge]))
    result = prepare("--input", tmp_path / "in.jsonl", "--output", tmp_path / "out", "--no-dedup")
    assert_ok(result)
    m = manifest(tmp_path / "out")
    val = sum(e["tokens"] for e in m["shards"] if e["split"] == "val")
    total = sum(e["tokens"] for e in m["shards"])
    encoding = get_tokenizer("gpt2").encoding  # tiktoken's GPT-2 BPE from the offline copy prepare uses
    assert total == sum(len(encoding.encode_ordinary(t)) + 1 for t in small + [huge])  # no token lost
    assert val <= 0.10 * total, f"validation holds {val / total:.1%} of the tokens; the cap is 10%"


# ---- 11: smaller things ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, content", [("empty.jsonl", b""), ("empty.jsonl.gz", b""),
                                           ("cut.jsonl.zst", None)])
def test_error_after_an_unreadable_file_names_only_folders_that_exist(tmp_path, name, content):
    if content is None:
        import zstandard
        whole = zstandard.ZstdCompressor().compress(jsonl(documents(3)))
        content = whole[:len(whole) // 2]
    (tmp_path / name).write_bytes(content)
    result = prepare("--input", tmp_path / name, "--output", tmp_path / "out", "--no-dedup")
    line = assert_one_line_error(result, name)
    for path in re.findall(r"(/[^\s;,()]+)", line):
        if "rejected" in path or ".prepare-work" in path:
            assert Path(path.rstrip(".")).exists(), f"the error points to {path}, which does not exist"


def test_wrong_text_key_warnings_name_the_key(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(jsonl(documents(3), key="content"))
    result = prepare("--input", tmp_path / "in.jsonl", "--text-key", "body", "--output", tmp_path / "out",
                     "--no-dedup")
    warnings = [line for line in result.stderr.splitlines() if "skipped" in line and "in.jsonl:" in line]
    assert len(warnings) == 3 and all("'body'" in line for line in warnings), warnings
    assert_one_line_error(result, "in.jsonl")


def test_disk_full_during_prepare_is_one_line_and_keeps_the_earlier_output(tmp_path):
    disk = tmp_path / "disk"
    out = tmp_path / "report"
    out.mkdir()
    target = disk / "data"
    script = f"""
        $PY -m pipeline.prepare --limit 30 --no-dedup --val-tokens 500 --output {target} > {out}/1.out 2> {out}/1.err
        echo $? > {out}/1.rc
        sha256sum {target}/*.bin {target}/manifest.json > {out}/before.sha
        $PY -m pipeline.prepare --limit 4000 --no-dedup --val-tokens 500 --output {target} > {out}/2.out 2> {out}/2.err
        echo $? > {out}/2.rc
        sha256sum {target}/*.bin {target}/manifest.json > {out}/after.sha
    """
    done = run_on_small_disk(disk, 3 * 2**20, script)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "1.rc").read_text().strip() == "0", (out / "1.err").read_text()[-3000:]
    second = subprocess.CompletedProcess([], int((out / "2.rc").read_text()), (out / "2.out").read_text(),
                                         (out / "2.err").read_text())
    assert_one_line_error(second, str(target))
    assert "No space left" in error_lines(second)[0] or "space" in error_lines(second)[0]
    assert (out / "after.sha").read_text() == (out / "before.sha").read_text()  # the earlier output intact


def test_report_links_only_to_files_that_exist(warc_reference):
    report = warc_reference / "cleaning" / "report.md"
    text = report.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"`(/[^`\s]+)`", text)
    assert targets, "the report links to nothing"
    for target in (t for listed in targets for t in listed.split(",")):  # the input is a comma-separated list
        if target.startswith(("http://", "https://", "#")):
            continue
        path = Path(target) if target.startswith("/") else report.parent / target
        assert ".prepare-work" not in target, f"report.md links to {target}, deleted at commit"
        assert path.exists(), f"report.md links to {target}, which does not exist"


# ---- 13: the same input gives the same shards on a busy machine -------------------------------------------------
def largest_pages(source: Path, target: Path, n: int) -> Path:
    """The n largest pages of a .warc.gz, in their order, as a .warc.gz of their own (each record is a gzip member of
    its own: the members are copied byte for byte)."""
    from warcio.archiveiterator import ArchiveIterator

    records = []
    with open(source, "rb") as f:
        iterator = ArchiveIterator(f)
        for record in iterator:
            size = len(record.content_stream().read())
            iterator.read_to_end()
            records.append((iterator.get_record_offset(), iterator.get_record_length(), size))
    chosen = sorted(sorted(range(len(records)), key=lambda i: -records[i][2])[:n])
    data = source.read_bytes()
    target.write_bytes(b"".join(data[records[i][0]:records[i][0] + records[i][1]] for i in chosen))
    return target


def test_same_warc_gives_the_same_shards_with_the_cores_saturated(tmp_path):
    """news-200's slowest pages take ~0.2-0.3 s of CPU to extract; with every core busy three times over they take
    longer than the 1 s wall-clock timeout, and must be kept all the same. The crawl's 40 largest pages hold its
    slowest ones (the three slowest among them), at a fifth of the pages to clean twice."""
    crawl = largest_pages(CRAWL / "news-200.warc.gz", tmp_path / "largest-40.warc.gz", 40)
    command = ["--corpus", "commoncrawl", "--input", crawl, "--workers", "2", "--no-dedup", "--val-tokens", "2000"]
    assert_ok(prepare(*command, "--output", tmp_path / "idle"))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3 * (os.cpu_count() or 1))]
    try:
        busy = prepare(*command, "--output", tmp_path / "busy", timeout=1200)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert_ok(busy)
    assert manifest(tmp_path / "idle")["cleaning"]["documents"]["read"] == 40
    assert shard_digests(tmp_path / "busy") == shard_digests(tmp_path / "idle")
    assert manifest(tmp_path / "busy")["totals"] == manifest(tmp_path / "idle")["totals"]
