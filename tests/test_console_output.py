"""What `pipeline.prepare` prints: its own progress, summary and warnings; datatrove's INFO lines (task starts,
pipelines, every stage's stats dictionary) go to the log files only; the tokenize and shard-writing bars have
totals."""
import re
import subprocess
import sys


def test_info_lines_go_to_the_logs_and_warnings_still_show(tmp_path, shared_data):
    lines = (shared_data / "text" / "dclm_majority_data.jsonl").read_text().splitlines()[:30]
    (tmp_path / "in.jsonl").write_text("\n".join(lines[:10] + ["not json"] + lines[10:]) + "\n")
    result = subprocess.run([sys.executable, "-m", "pipeline.prepare", "--input", str(tmp_path / "in.jsonl"),
                             "--output", str(tmp_path / "out"), "--no-dedup"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    console = result.stdout + result.stderr
    assert "| INFO " not in console and "| SUCCESS " not in console and "Stats:" not in console
    assert "in.jsonl:11: skipped (malformed JSON" in console  # a warning is still on the console
    assert "write shards: 100%" in console  # a total, so a percentage and an ETA
    assert re.search(r"tokenize: 100%\S* (\d+)/\1 ", console)  # the documents the shuffle wrote
    task_log = (tmp_path / "out" / "logs" / "read" / "logs" / "task_00000.log").read_text()
    assert "| INFO " in task_log and "malformed JSON" in task_log
