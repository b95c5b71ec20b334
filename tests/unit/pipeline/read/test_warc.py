"""WARC input: bad files and records are skipped with a counted reason, and the run completes and says so."""
import gzip
import io
import json
from pathlib import Path

import matplotlib
import pytest
from warcio.archiveiterator import ArchiveIterator

from pipeline.clean.run import clean
from pipeline.read.warc import WARC_SUFFIXES, CheckedWarcReader
from pipeline.read.corpora import expand_input
from gptstack.errors import InputError
from tests.support import REPO_ROOT
from tests.support.warc import write_warc


def real_pages(shared_data, n):
    """(url, html bytes) of the first n pages of the real news crawl."""
    pages = []
    with open(shared_data / "crawl" / "news-200.warc.gz", "rb") as f:
        for record in ArchiveIterator(f):
            pages.append((record.rec_headers.get_header("WARC-Target-URI"), record.content_stream().read()))
            if len(pages) == n:
                return pages


def cyrillic_page(shared_data) -> tuple[str, str]:
    for url, html in real_pages(shared_data, 200):
        text = html.decode("utf-8")
        if sum("а" <= c <= "я" for c in text) > 500:
            return url, text
    raise AssertionError("no Cyrillic page in the crawl")


@pytest.fixture(scope="module")
def bad_crawl(tmp_path_factory, shared_data):
    """A folder of real-but-broken WARC files built from the real crawls."""
    folder = tmp_path_factory.mktemp("bad_crawl")
    news = (shared_data / "crawl" / "news-200.warc.gz").read_bytes()
    (folder / "a_truncated.warc.gz").write_bytes(news[:300_000])  # cut inside a gzip member
    (folder / "b_empty.warc.gz").write_bytes(b"")
    pages = real_pages(shared_data, 3)
    write_warc(folder / "c_broken.warc", [(u, h, "text/html") for u, h in pages], gzip_records=False)
    raw = (folder / "c_broken.warc").read_bytes()
    second = raw.index(b"WARC/1.0", 10)
    (folder / "c_broken.warc").write_bytes(raw[:second] + b"GARBAGE!" + raw[second + 8:])  # header of record 2
    url, text = cyrillic_page(shared_data)
    png = (Path(matplotlib.get_data_path()) / "images" / "home.png").read_bytes()
    pdf = io.BytesIO()
    import matplotlib.pyplot as plt

    plt.figure().savefig(pdf, format="pdf")
    plt.close("all")
    write_warc(folder / "d_mixed.warc.gz", [
        ("http://example.org/logo.png", png, "image/png"),
        ("http://example.org/paper.pdf", pdf.getvalue(), "application/pdf"),
        (url, text.encode("cp1251", errors="xmlcharrefreplace"), "text/html; charset=windows-1251"),
        ("http://example.org/nothing", b"", "text/html"),
    ])
    return folder, text


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


def test_run_completes_on_bad_input_and_keeps_crashes_aside(bad_crawl, shared_data, tmp_path):
    """Whole chain over the broken files + real crawler WARCs, with a recipe whose Gopher step crashes on every
    document: the run completes, every crash is kept aside under its reason, and the counts add up."""
    folder, _ = bad_crawl
    recipe = tmp_path / "crashing.yaml"
    recipe.write_text((REPO_ROOT / "configs" / "recipes" / "fineweb.yaml").read_text()
                      .replace("top_n_grams: [[2, 0.2], [3, 0.18], [4, 0.16]]", "top_n_grams: [[2]]"))
    inputs = f"{folder},{shared_data / 'crawl' / 'dolma-sample-0000.warc.gz'}"
    report = clean(inputs, str(tmp_path / "out"), str(recipe), ["en"])
    assert report["accounting_ok"]
    docs = report["documents"]
    assert docs["read"] == docs["kept"] + docs["dropped"] + docs["failed"] and docs["kept"] == 0
    gopher = next(s for s in report["steps"] if s["step"] == "gopher_repetition")
    assert gopher["docs_in"] > 0 and gopher["failed"] == {"error_ValueError": gopher["docs_in"]}
    crashed = [json.loads(line) for path in (tmp_path / "out" / gopher["exclusion_folder"]).glob("*.jsonl.gz")
               for line in gzip.open(path, "rt")]
    assert len(crashed) == gopher["docs_in"] and all("ValueError" in c["metadata"]["error"] for c in crashed)
    assert report["reader"]["skipped"]["corrupt_file"] == 2 and report["reader"]["skipped"]["not_html"] == 2
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "corrupt_file" in markdown and "error_ValueError" in markdown


def test_extraction_timeouts_are_kept_aside(shared_data, tmp_path):
    """Pages Trafilatura does not finish in time are failures kept aside with the page, and the run completes."""
    recipe = tmp_path / "impatient.yaml"
    recipe.write_text((REPO_ROOT / "configs" / "recipes" / "fineweb.yaml").read_text()
                      .replace("timeout: 1.0", "timeout: 0.0001"))
    report = clean(str(shared_data / "crawl" / "dolma-sample-0000.warc.gz"), str(tmp_path / "out"), str(recipe))
    extraction = next(s for s in report["steps"] if s["step"] == "trafilatura")
    assert extraction["docs_in"] == 22 and extraction["failed"] == {"error_timeout": 22}  # its 22 HTML pages
    assert report["accounting_ok"] and report["documents"]["failed"] == 22 and report["documents"]["kept"] == 0
    kept_aside = [json.loads(line) for path in (tmp_path / "out" / extraction["exclusion_folder"]).glob("*.jsonl.gz")
                  for line in gzip.open(path, "rt")]
    assert len(kept_aside) == 22 and all(d["text"].lstrip().startswith("<") for d in kept_aside)  # the page itself
