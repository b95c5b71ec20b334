"""Bad input to `gptstack eval` is one error line and exit code 2, before any model is loaded."""
import pytest

from model.eval.cli import main


def _error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_unknown_task_lists_the_valid_names(capsys, tmp_path):
    err = _error(["--checkpoint", str(tmp_path), "--suite", "copa,no_such_task"], capsys)
    assert "no_such_task" in err and "hellaswag" in err


def test_a_folder_without_weights(capsys, tmp_path):
    (tmp_path / "checkpoints" / "step_000002").mkdir(parents=True)
    err = _error(["--checkpoint", str(tmp_path), "--suite", "copa"], capsys)
    assert str(tmp_path) in err and "model.safetensors" in err


def test_lm_eval_task_yamls_are_written(tmp_path, capsys):
    main(["--write-lm-eval-tasks", str(tmp_path), "--suite", "winogrande,lambada"])
    winogrande = (tmp_path / "gptstack_winogrande.yaml").read_text()
    assert "winogrande_xl/validation/data-00000-of-00001.arrow" in winogrande and "multiple_choice" in winogrande
    # the few-shot rule of gptstack.eval_data.fewshot_prefix: lm-eval leaves the question out only from a test split,
    # and ignores --num_fewshot where the yaml says 0
    assert "test_split: validation" in winogrande and "num_fewshot" not in winogrande
    assert "output_type: loglikelihood" in (tmp_path / "gptstack_lambada.yaml").read_text()
    assert (tmp_path / "gptstack_lm_eval.py").is_file()


def test_plot_run_reads_a_logged_metric_over_tokens(tmp_path):
    import json
    lines = [{"step": 1, "loss": 9.0, "tokens": 2048}, {"step": 2, "loss": 8.0, "tokens": 4096},
             {"step": 2, "val_loss": 8.5, "eval/hellaswag": 0.26}, {"step": 4, "loss": 7.0, "tokens": 8192},
             {"step": 4, "val_loss": 7.5, "eval/hellaswag": 0.27}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"step": 5, "lo')
    main(["--plot-run", str(tmp_path), "--metric", "eval/hellaswag", "--output", str(tmp_path / "out")])
    points = json.loads((tmp_path / "out" / "plot_eval_hellaswag.json").read_text())["points"]
    assert points == [{"step": 2, "tokens": 4096, "value": 0.26}, {"step": 4, "tokens": 8192, "value": 0.27}]
    assert (tmp_path / "out" / "plot_eval_hellaswag.png").stat().st_size > 1000  # the torn last line is skipped
