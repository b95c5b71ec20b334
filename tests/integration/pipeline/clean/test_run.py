"""The FineWeb recipe on a real crawl: plain text out, requested languages only, every document accounted for."""
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.clean.run import clean
from tests.support import REPO_ROOT

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
        written = jsonl_gz(out / step["exclusion_folder"]) if (out / step["exclusion_folder"]).exists() else []
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
    pii = report["steps"][-2]  # (the last: decontaminate)
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
                            cwd=REPO_ROOT)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --input") and result.stderr.count("\n") == 1


def dclm_lines(shared_data, start: int, count: int) -> str:
    lines = (shared_data / "text" / "dclm_majority_data.jsonl").read_text().splitlines()[start:start + count]
    return "\n".join(lines) + "\n"


def clean_command(*args) -> list[str]:
    return [sys.executable, "-m", "pipeline.clean", *map(str, args)]


def test_interrupted_run_resumes(shared_data, tmp_path):
    """Killed while its second task runs, the same command finishes the job without redoing the first task, and
    keeps exactly what an uninterrupted run keeps."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.jsonl").write_text(dclm_lines(shared_data, 0, 20))
    (inputs / "b.jsonl").write_text(dclm_lines(shared_data, 20, 150))
    out = tmp_path / "out"
    command = clean_command("--input", inputs, "--output", out, "--recipe", "fineweb", "--workers", 1)
    first_done = out / "logs" / "clean" / "completions" / "00000"
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.time() + 300
        while not first_done.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert first_done.exists() and not (out / "logs" / "clean" / "completions" / "00001").exists()
    assert not (out / "report.json").exists()
    first_task_output = (out / "kept" / "00000.jsonl.gz").stat()

    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    # datatrove's "Skipping 1 already completed tasks" is INFO, now kept off the console: the untouched output of
    # task 0 below is what shows it was not redone
    assert (out / "logs" / "clean" / "completions" / "00001").exists()
    assert (out / "kept" / "00000.jsonl.gz").stat().st_mtime_ns == first_task_output.st_mtime_ns
    report = json.loads((out / "report.json").read_text())
    assert report["accounting_ok"] and report["documents"]["read"] == 170  # both tasks' stats, not only the rerun's

    reference = clean(str(inputs), str(tmp_path / "reference"), "fineweb", ["en"], workers=1)
    assert jsonl_gz(out / "kept") == jsonl_gz(tmp_path / "reference" / "kept")
    assert report["documents"] == reference["documents"]


def test_malformed_line_is_kept_in_rejected_with_its_reason(tmp_path):
    (tmp_path / "docs.jsonl").write_text('{"text": "first document"}\n{"text": "cut short\n{"text": "third"}\n')
    result = subprocess.run(clean_command("--input", tmp_path / "docs.jsonl", "--output", tmp_path / "out"),
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [d["text"] for d in jsonl_gz(tmp_path / "out" / "kept")] == ["first document", "third"]
    rejected = [json.loads(line) for path in (tmp_path / "out" / "rejected").glob("*.jsonl") for line in path.open()]
    assert len(rejected) == 1 and rejected[0]["reason"] == "malformed_json"
    assert rejected[0]["where"].endswith("docs.jsonl:2") and rejected[0]["record"] == '{"text": "cut short'
    assert "skipped 1 records" in result.stdout and "malformed JSON: 1" in result.stdout


def test_limit_is_a_total_over_all_tasks(shared_data, tmp_path):
    for name, start in (("a.jsonl", 0), ("b.jsonl", 30), ("c.jsonl", 60)):
        (tmp_path / name).write_text(dclm_lines(shared_data, start, 30))
    report = clean(f"{tmp_path}/*.jsonl", str(tmp_path / "out"), "none", tasks=3, limit=10)
    kept = jsonl_gz(tmp_path / "out" / "kept")
    assert report["documents"]["read"] == report["documents"]["kept"] == len(kept) == 10
    # split evenly between the tasks (4 + 3 + 3), each reading its own file; ids are file/line
    assert [d["id"] for d in kept] == [f"a.jsonl/{i}" for i in range(4)] + [f"{name}/{i}" for name in
                                                                          ("b.jsonl", "c.jsonl") for i in range(3)]
    help_text = subprocess.run(clean_command("--help"), cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert "--corpus" not in help_text and "--limit" in help_text and "in all" in help_text
