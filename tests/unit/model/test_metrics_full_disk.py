"""A metrics write that fails between checkpoints (model/metrics.py) is one warning and is retried: metrics.jsonl is
rewritten whole at the next log (no record lost, none twice, no half line), loss.png is drawn again at the next plot;
a metrics.jsonl read back at a resume holding anything else is skipped, not a traceback.

The full disk is real: /dev/full answers every write with ENOSPC."""
import json
import os
import shutil

import pytest

from model.metrics import MetricsLogger

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_failed_metrics_write_is_one_warning_and_the_next_log_writes_everything(tmp_path, capsys):
    logger = MetricsLogger(tmp_path, enabled=True, tensorboard=False, plot_every=0, resumed_step=0)
    logger.log({"step": 1, "loss": 5.0})
    logger.file.close()
    logger.file = open("/dev/full", "a")  # the file being appended to is on a full disk
    logger.log({"step": 2, "loss": 4.0})  # the flush fails: warned, the record kept in memory
    assert logger.unwritten and [r["step"] for r in records(tmp_path)] == [1]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "metrics.jsonl" in warnings[0] and "No space left on device" in warnings[0]
    logger.log({"step": 3, "loss": 3.0})  # room again: the whole file rewritten from memory, then appended to
    assert not logger.unwritten and [r["step"] for r in records(tmp_path)] == [1, 2, 3]
    assert "metrics.jsonl written again" in capsys.readouterr().err
    logger.log({"step": 4, "loss": 2.5})
    logger.close()
    assert [r["step"] for r in records(tmp_path)] == [1, 2, 3, 4]


def test_a_failed_loss_png_keeps_the_old_picture_and_is_drawn_again(tmp_path, capsys):
    logger = MetricsLogger(tmp_path, enabled=True, tensorboard=False, plot_every=1, resumed_step=0)
    logger.log({"step": 1, "loss": 5.0})
    first = (tmp_path / "loss.png").read_bytes()
    (tmp_path / "loss.png").unlink()
    (tmp_path / "loss.png").mkdir()  # a real failure of the rename onto it (as root, permissions would not stop it)
    logger.log({"step": 2, "loss": 4.0})
    logger.log({"step": 3, "loss": 3.0})
    err = capsys.readouterr().err
    assert err.count("warning: cannot write") == 1 and "loss.png" in err
    (tmp_path / "loss.png").rmdir()
    logger.log({"step": 4, "loss": 2.0})
    assert (tmp_path / "loss.png").read_bytes()[:8] == first[:8] == b"\x89PNG\r\n\x1a\n"
    assert "loss.png written again" in capsys.readouterr().err
    logger.close()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_metrics_read_back_at_a_resume_skip_what_is_not_a_record(tmp_path):
    lines = ['{"step": 1, "loss": 5.0}', "[1, 2]", '{"step": "2", "loss": 4.0}', '{"step": 2, "loss": "x"}',
             "[" * 100_000, '{"loss": 1.0}', '{"step": 3, "loss": 3.0}', "x" * (2 * 2**20), '{"step": 9}']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    logger = MetricsLogger(tmp_path, enabled=True, tensorboard=False, plot_every=1, resumed_step=3)
    assert [r["step"] for r in records(tmp_path)] == [1, 2, 3]  # after step 3: logged again by this attempt
    logger.log({"step": 4, "loss": 2.0})  # plots the records kept, "x" among them, without a traceback
    logger.close()
    assert (tmp_path / "loss.png").is_file()


def test_a_run_folder_that_cannot_be_written_at_start_is_one_line(tmp_path):
    from gptstack.errors import GPTStackError

    (tmp_path / "metrics.jsonl").mkdir()
    with pytest.raises(GPTStackError, match="cannot write the metrics in"):
        MetricsLogger(tmp_path, enabled=True, tensorboard=False, plot_every=1, resumed_step=0)
    shutil.rmtree(tmp_path / "metrics.jsonl")
