"""The FineWeb recipe on a real crawl: plain text out, requested languages only, every document accounted for."""
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.clean.run import clean

HTML_TAG = re.compile(r"</?(html|head|body|div|span|p|a|script|style|meta|link|img|br|li|ul|table)\b[^>]*>", re.I)


def jsonl_gz(folder: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl.gz")) for line in gzip.open(path, "rt")]


@pytest.fixture(scope="module")
def news_run(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("news")
    report = clean(str(shared_data / "crawl" / "news-200.warc.gz"), str(out), "fineweb", ["en", "es"])
    return out, report


def test_kept_documents_are_plain_text_in_requested_languages(news_run):
    out, report = news_run
    kept = jsonl_gz(out / "kept")
    assert len(kept) == report["documents"]["kept"] > 20
    assert not [d["id"] for d in kept if HTML_TAG.search(d["text"])]
    languages = {d["metadata"]["language"] for d in kept}
    assert languages == {"en", "es"}  # Spanish pages are kept when asked for; nothing else
    assert all(d["metadata"]["language_score"] > 0.65 for d in kept)


def test_every_record_accounted_for(news_run):
    out, report = news_run
    assert report["accounting_ok"]
    assert report["reader"]["records"] == 200 == report["reader"]["documents"] + sum(report["reader"]["skipped"].values())
    docs = report["documents"]
    assert docs["read"] == report["reader"]["documents"] == docs["kept"] + docs["dropped"] + docs["failed"]
    for step in report["steps"]:  # every drop and every failure is in the step's exclusion folder, with its reason
        written = jsonl_gz(Path(step["exclusion_folder"])) if Path(step["exclusion_folder"]).exists() else []
        expected = {**step["dropped"], **step["failed"]}
        assert len(written) == sum(expected.values()), step["step"]
        for reason, count in expected.items():
            assert sum(d["metadata"]["filter_reason"] == reason for d in written) == count
    language = next(s for s in report["steps"] if s["step"] == "language_filter")
    assert sum(report["languages_detected"].values()) == language["docs_in"]
    assert language["dropped"] and all(r.startswith(("language_", "low_score_")) for r in language["dropped"])


def test_report_written_and_adds_up(news_run):
    out, report = news_run
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "report.md").read_text()
    docs = report["documents"]
    assert f"{docs['read']:,} read = {docs['kept']:,} kept + {docs['dropped']:,} dropped + {docs['failed']:,} failed" \
        in markdown and "adds up: yes" in markdown
    for step in report["steps"]:
        assert f"| {step['step']} | {step['docs_in']:,} | {step['docs_out']:,} |" in markdown
    for a, b in zip(report["steps"], report["steps"][1:]):
        assert a["docs_out"] == b["docs_in"] and (b["tokens_in"] is None or b["tokens_in"] == a["tokens_out"])
    pii = report["steps"][-1]
    assert pii["step"] == "pii" and pii["tokens_out"] > 10_000
    assert "## Examples of kept text" in markdown and "## Examples of dropped text" in markdown


def test_text_input_runs_the_recipe_without_extraction(shared_data, tmp_path):
    lines = (shared_data / "text" / "dclm_majority_data.jsonl").read_text().splitlines()[:60]
    (tmp_path / "docs.jsonl").write_text("\n".join(lines) + "\n")
    report = clean(str(tmp_path / "docs.jsonl"), str(tmp_path / "out"), "fineweb", ["en"])
    assert [s["step"] for s in report["steps"]][:2] == ["url_filter", "language_filter"]  # no trafilatura
    assert report["accounting_ok"] and report["documents"]["read"] == 60
    assert 0 < report["documents"]["kept"] < 60
    assert report["steps"][0]["tokens_in"] > 0  # counted on entry for text input


def test_cli_errors_are_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline.clean", "--input", str(tmp_path / "nope.warc.gz"),
                             "--output", str(tmp_path / "out")], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2
    assert result.stderr.startswith("error: --input") and result.stderr.count("\n") == 1
