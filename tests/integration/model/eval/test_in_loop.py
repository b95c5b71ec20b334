"""eval.suite in a real (DeepSpeed, 1 rank) training run: a timed first pass in the plan line, then eval/<task>,
eval/<suite>_centered and the suite's cost in metrics.jsonl on the validation schedule."""
from tests.support.train import TINY, read_metrics, run_train


def test_the_suite_is_logged_on_its_schedule(tiny_shards, tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(1, [*TINY, "--data", str(tiny_shards), "--run-dir", str(run_dir), "--max-steps", "2",
                           "--set", "eval.every=2", "--set", "eval.val_batches=1", "--set", "checkpoint.every=0",
                           "--set", "eval.suite=copa,winogrande", "--set", "eval.suite_limit=8"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "eval.suite copa,winogrande: 2 tasks x 8 examples, 0-shot; first pass" in result.stdout
    records = [r for r in read_metrics(run_dir) if "eval/copa" in r]
    assert [r["step"] for r in records] == [0, 2]  # the starting point, then with the validation at step 2
    for record in records:
        assert 0 <= record["eval/copa"] <= 1 and 0 <= record["eval/winogrande"] <= 1
        centred = ((record["eval/copa"] - 0.5) / 0.5 + (record["eval/winogrande"] - 0.5) / 0.5) / 2
        assert abs(record["eval/suite_centered"] - centred) < 1e-9
        assert record["eval/suite_seconds"] > 0 and 0 <= record["eval/suite_share"] < 1
    assert records[0]["eval/suite_share"] == 0 < records[1]["eval/suite_share"]  # no previous pass for the first
    assert "val_loss" in records[1]
