"""Whole cleaning runs over broken input: the run completes, every crash and every timeout is kept aside under its
reason, and the counts add up (the reader's skip reasons alone: tests/unit/pipeline/read/test_warc.py)."""
import gzip
import json

import pytest

from pipeline.clean.run import clean
from tests.support import REPO_ROOT
from tests.support.warc import broken_crawl


@pytest.fixture(scope="module")
def bad_crawl(tmp_path_factory, shared_data):
    return broken_crawl(tmp_path_factory.mktemp("bad_crawl"), shared_data)


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
