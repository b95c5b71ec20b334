"""Ctrl-C (SIGINT) stops a training run the way Slurm's signals do: the step finishes, a checkpoint is written, the
trainer exits 75, and the same command continues from there. A learner's first interruption must not cost steps."""
import signal
import subprocess
import time

from tests.support.train import TINY, REPO_ROOT, read_metrics, run_train, train_command, train_env


def test_ctrl_c_checkpoints_and_the_same_command_resumes(tmp_path, tiny_shards):
    shards = tiny_shards  # tests/integration/conftest.py: read, never written
    run_dir = tmp_path / "run"
    base = [*TINY, "--data", str(shards), "--run-dir", str(run_dir), "--set", "checkpoint.every=0",
            "--set", "eval.every=0"]
    args = [*base, "--max-steps", "60"]
    process = subprocess.Popen(train_command(1, args), cwd=REPO_ROOT, env=train_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not ((run_dir / "metrics.jsonl").is_file() and read_metrics(run_dir)):
            assert process.poll() is None and time.monotonic() < deadline, "no step 1"
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 75, output[-3000:]
    assert "received SIGINT: checkpointing after this step" in output and "Traceback" not in output
    reached = [r["step"] for r in read_metrics(run_dir)][-1]
    assert 0 < reached < 60
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [f"step_{reached:06d}"]
    resumed = run_train(1, [*base, "--max-steps", str(reached + 1)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"at step {reached}" in resumed.stdout
