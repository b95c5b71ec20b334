"""The cleaning report a data engineer reads (issue 17, item 8), on a real WARC through `pipeline.prepare`:
length histograms of the kept documents in characters and tokens, kept documents per language after the whole
recipe, top domains kept and dropped, the lid.176 score distribution; every path in report.json relative to the
output folder and every link in report.md pointing to a file that exists after the commit."""
import json
import os
import re
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT


@pytest.fixture(scope="module")
def prepared(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "cc"
    command = [sys.executable, "-m", "pipeline.prepare", "--corpus", "commoncrawl",
               "--input", str(shared_data / "crawl" / "news-200.warc.gz"), "--output", str(out), "--limit", "40",
               "--languages", "all", "--no-dedup", "--val-tokens", "2000", "--shard-tokens", "20000"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, json.loads((out / "cleaning" / "report.json").read_text())


def test_report_json_describes_the_kept_and_dropped_data(prepared):
    out, report = prepared
    data, kept = report["data"], report["documents"]["kept"]
    assert report["accounting_ok"] and 0 < kept <= 40 and data["kept_documents"] == kept
    for key in ("characters", "tokens"):
        histogram = data[key]
        assert sum(row["documents"] for row in histogram["bins"]) == kept == histogram["documents"]
        assert 0 < histogram["median"] <= histogram["max"] and histogram["mean"] > 0
    assert sum(data["kept_by_language"].values()) == kept and "unknown" not in data["kept_by_language"]
    assert data["top_domains_kept"] and all("/" not in name and n >= 1 for name, n in data["top_domains_kept"])
    dropped = report["documents"]["dropped"] + report["documents"]["failed"]
    assert sum(n for _, n, _ in data["top_domains_dropped"]) <= dropped
    assert all(sum(steps.values()) == n for _, n, steps in data["top_domains_dropped"])
    language = next(s for s in report["steps"] if s["step"] == "language_filter")
    assert sum(data["language_scores"].values()) == language["docs_in"]
    assert report["steps"][-1]["tokens_out"] > 0 and all(s["tokens_out"] is not None for s in report["steps"][1:])


def test_report_paths_are_relative_and_point_where_the_files_are(prepared, shared_data):
    out, report = prepared
    text = (out / "cleaning" / "report.json").read_text() + (out / "cleaning" / "report.md").read_text()
    assert str(out) not in text and str(shared_data) not in text and ".prepare-work" not in text
    assert not re.search(r"(^|[\s`(\"])/(tmp|work|home|usr)/", text, re.M)
    assert report["recipe_path"] == "cleaning/recipe.yaml" and (out / report["recipe_path"]).is_file()
    for step in report["steps"]:
        assert not os.path.isabs(step["exclusion_folder"]) and step["exclusion_folder"].startswith("cleaning/excluded/")
    assert report["reader"]["skipped_folder"] == "rejected/warc"
    markdown = (out / "cleaning" / "report.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", markdown)
    assert "report.png" in links and "recipe.yaml" in links and any(link.startswith("excluded/") for link in links)
    for link in links:
        assert (out / "cleaning" / link).exists(), link
    for heading in ("## Kept data", "Length in characters", "Length in tokens", "Kept documents per language",
                    "Language-ID scores", "Top domains kept", "Top domains dropped"):
        assert heading in markdown
    assert (out / "cleaning" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
