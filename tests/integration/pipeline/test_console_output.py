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


def test_read_bar_counts_bytes_of_the_input_against_their_total(tmp_path, shared_data):
    """The read stage's bar counts bytes of the input files (their summed size, known up front) with an ETA and the
    documents read, not `0/1` tasks; it reaches the total."""
    from tqdm import tqdm

    lines = (shared_data / "text" / "dclm_majority_data.jsonl").read_text().splitlines()[:40]
    (tmp_path / "in").mkdir()
    for number, part in enumerate((lines[:25], lines[25:])):
        (tmp_path / "in" / f"part{number}.jsonl").write_text("\n".join(part) + "\n")
    total = sum(path.stat().st_size for path in (tmp_path / "in").glob("*.jsonl"))
    result = subprocess.run([sys.executable, "-m", "pipeline.prepare", "--input", str(tmp_path / "in"),
                             "--output", str(tmp_path / "out"), "--no-dedup", "--workers", "1"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    shown = tqdm.format_sizeof(total, divisor=1024)
    finals = re.findall(r"read: 100%\S* (\S+)/(\S+) \[[^\]]*?, (\d+) docs, (\d+)/2 tasks\]", result.stderr)
    assert finals, result.stderr[-2000:]
    done, of, _, tasks = finals[-1]
    assert done == of == shown and tasks in ("0", "1", "2")
    assert "read:" in result.stderr and not re.search(r"read: +\d+%\S* \d+/2 \[", result.stderr)  # not tasks
