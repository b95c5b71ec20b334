"""WARC input: bad files and records are skipped with a counted reason (whole cleaning runs over them:
tests/integration/pipeline/clean/test_bad_input.py)."""
import gzip
import json
from pathlib import Path

import pytest

from pipeline.read.warc import WARC_SUFFIXES, CheckedWarcReader
from pipeline.read.corpora import expand_input
from gptstack.errors import InputError
from tests.support.warc import broken_crawl


@pytest.fixture(scope="module")
def bad_crawl(tmp_path_factory, shared_data):
    return broken_crawl(tmp_path_factory.mktemp("bad_crawl"), shared_data)


def read_all(reader):
    documents = list(reader.run())
    counts = {k: (v.total if hasattr(v, "total") else v) for k, v in reader.stats.stats.items()}
    return documents, counts


def test_reader_skips_bad_input_with_reasons(bad_crawl, tmp_path):
    folder, cyrillic_text = bad_crawl
    root, files = expand_input(str(folder), WARC_SUFFIXES)
    assert [Path(f).name for f in files] == ["a_truncated.warc.gz", "b_empty.warc.gz", "c_broken.warc",
                                             "d_mixed.warc.gz"]
    reader = CheckedWarcReader(root, files, str(tmp_path / "skipped"))
    documents, counts = read_all(reader)
    assert counts["skipped_corrupt_file"] == 2  # the truncated gzip and the garbled record
    assert counts["skipped_empty_file"] == 1
    assert counts["skipped_not_html"] == 2  # the PNG and the PDF
    assert counts["skipped_empty_payload"] == 1
    assert counts["documents_passed"] == len(documents) > 1  # pages before the damage are kept
    legacy = [d for d in documents if d.metadata.get("charset") == "windows-1251"]
    assert len(legacy) == 1 and legacy[0].text == cyrillic_text.encode("cp1251", "xmlcharrefreplace").decode("cp1251")
    pointers = [json.loads(line) for path in (tmp_path / "skipped").glob("*.jsonl.gz")
                for line in gzip.open(path, "rt")]
    skipped = sum(v for k, v in counts.items() if k.startswith("skipped_"))
    assert len(pointers) == skipped and all(p["metadata"]["filter_reason"] for p in pointers)


def test_dolma_crawl_records_accounted(shared_data, tmp_path):
    """Genuine crawler WARCs: request, warcinfo, metadata and resource records are counted, never lost."""
    crawl = shared_data / "crawl"
    reader = CheckedWarcReader(str(crawl), ["dolma-sample-0000.warc.gz", "dolma-sample-0001.warc.gz"],
                               str(tmp_path / "skipped"))
    documents, counts = read_all(reader)
    skipped = sum(v for k, v in counts.items() if k.startswith("skipped_"))
    assert counts["records"] == 82 and counts["records"] == len(documents) + skipped
    assert counts["skipped_not_a_response"] == 82 - 37 and len(documents) == 37  # 37 HTML responses
    assert all(d.text.lstrip().startswith("<") and d.metadata["url"].startswith("http") for d in documents)


def test_fsspec_url_input(shared_data, tmp_path):
    """A URL goes through fsspec (here file://, the same path as s3:// or https://): listed by glob, then read."""
    root, files = expand_input(f"file://{shared_data / 'crawl'}/dolma-*.warc.gz", WARC_SUFFIXES)
    assert root.startswith("file://") and files == ["dolma-sample-0000.warc.gz", "dolma-sample-0001.warc.gz"]
    documents, counts = read_all(CheckedWarcReader(root, files, str(tmp_path / "skipped")))
    assert len(documents) == 37 and counts["records"] == 82
    with pytest.raises(InputError, match="matches no file ending in .warc"):
        expand_input(f"file://{tmp_path}/*.warc.gz", WARC_SUFFIXES)


def test_input_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        expand_input(str(tmp_path / "missing.warc.gz"), WARC_SUFFIXES)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="notes.txt: unsupported input format; expected a file ending in .warc"):
        expand_input(str(tmp_path / "*.txt"), WARC_SUFFIXES)
    with pytest.raises(InputError, match="matches no file ending in .warc"):
        expand_input(str(tmp_path), WARC_SUFFIXES)


def test_one_resolver_for_every_input(shared_data, tmp_path):
    """Comma-separated patterns of any kind, files relative to their common folder; in a folder, hidden entries and
    files of other formats (a crawl's indexes, notes) are not read."""
    crawl = shared_data / "crawl"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "a" / ".partial.jsonl").write_text("")
    (tmp_path / "a" / "README.md").write_text("about x")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b'{"text": "b"}\n'))
    root, files = expand_input(f"{tmp_path / 'a'},{tmp_path}/*.jsonl.gz", (".jsonl", ".jsonl.gz"))
    assert root == str(tmp_path) and files == ["a/x.jsonl", "b.jsonl.gz"]
    root, files = expand_input(f"{crawl / 'dolma-sample-0001.warc.gz'}, {crawl}/dolma-sample-0000.warc.gz",
                               WARC_SUFFIXES)
    assert root == str(crawl) and files == ["dolma-sample-0001.warc.gz", "dolma-sample-0000.warc.gz"]
    root, files = expand_input(str(crawl), WARC_SUFFIXES)
    assert root == str(crawl) and "dolma-sample-0000.warc.gz" in files and all(".warc" in f for f in files)
    with pytest.raises(InputError, match="one remote location at a time"):
        expand_input(f"file://{crawl}/dolma-*.warc.gz,{crawl}", WARC_SUFFIXES)
