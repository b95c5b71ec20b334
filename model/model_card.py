"""The parts of a Hugging Face export that say how to use the model and what it is: generation_config.json and a
README.md model card (`python -m model.convert --checkpoint RUN --to-hf DIR` writes both next to the weights).

generation_config.json: end-of-text is the eos token (so `generate()` stops at the end of a document, as
`model.sample` does by default) and the context length is the maximum length (transformers' default is 20 tokens).

README.md: what a reader of the Hub page needs: architecture and size, how many tokens it was trained on and on
which data, the tokenizer, the validation loss and bits per byte, HellaSwag, how to load it; the `license:` field
is left for the person who publishes it. Everything is read from the files a training run leaves: the step's
trainer_state.json, the run's config.yaml and metrics.jsonl, and the shard folder's manifest.json when it can be
found from here. What cannot be found is written as "unknown", never guessed.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import yaml

from gptstack.files import atomic_write, bounded_lines
from model.checkpoint.layout import STATE_FILE, read_trainer_state
from model.gpt import GPT

GENERATION_CONFIG = "generation_config.json"
MODEL_CARD = "README.md"
HELLASWAG_KEYS = ("hellaswag_acc_token_norm", "hellaswag_acc")  # the second: runs logged before the rename
MAX_VALUE_CHARS = 300  # of one value interpolated into the card (a command line, a path): longer ones are cut
MAX_RUN_FILE_BYTES = 16 * 2**20  # config.yaml, manifest.json: far above what the trainer and prepare write
MAX_METRICS_LINE = 2**20  # a metrics.jsonl record is a few hundred bytes


def md(value, code: bool = False) -> str:
    """`value` as inert Markdown on one line: the one escape for everything the card interpolates from run files.

    Only scalars are shown (anything else is "unknown"), cut to MAX_VALUE_CHARS, every run of whitespace (a newline
    that would start a section) one space. As text, HTML's & < > become entities and Markdown's punctuation is
    backslash-escaped; as a code span (`code`), the fence is one backtick longer than any run inside it, so nothing
    in it can close it, a code span shows HTML as text, and a pipe is escaped (it would end a table cell)."""
    if value is None or not isinstance(value, (str, int, float)):
        return "unknown"
    try:
        text = str(value)[:4 * MAX_VALUE_CHARS]
    except ValueError:  # an int too long to print (Python's digit limit)
        return "unknown"
    text = " ".join(text.split())
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS - 1] + "…"
    if code:
        text = text.replace("|", "\\|")  # GitHub's tables split cells at a pipe even inside a code span
        longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
        fence = "`" * (longest + 1)
        pad = " " if text.startswith("`") or text.endswith("`") else ""
        return f"{fence}{pad}{text}{pad}{fence}"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join("\\" + ch if ch in MARKDOWN_PUNCTUATION else ch for ch in text)


MARKDOWN_PUNCTUATION = set("\\`*_[]#|~!")  # enough inline: no value starts a line


def write_generation_config(folder: Path, eot: int | None, block_size: int) -> None:
    from transformers import GenerationConfig

    generation = GenerationConfig(bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, max_length=block_size)
    atomic_write(folder / GENERATION_CONFIG, generation.to_json_string(use_diff=True))


def _read_run_file(path: Path, parse) -> dict:
    """A run file the card quotes from (config.yaml, manifest.json): its mapping, or {} when it is absent or
    unreadable (the card then says "unknown"); read bounded, and nothing but a mapping is taken."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_RUN_FILE_BYTES + 1)
        if len(raw) > MAX_RUN_FILE_BYTES:
            return {}
        value = parse(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def _real(value) -> float | None:
    """A finite number from a run file, else None (shown as "unknown")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18 else None


def _evaluations(path: Path, last_step: int | None) -> list[dict]:
    """The evaluation records of metrics.jsonl at or before `last_step`, read line by line (bounded)."""
    found = []
    try:
        with open(path, "rb") as file:
            for line in bounded_lines(file, MAX_METRICS_LINE):
                try:
                    record = json.loads(line) if line is not None else None
                except (ValueError, RecursionError):
                    continue
                if not isinstance(record, dict) or "val_loss" not in record:
                    continue
                step = _count(record.get("step", 0))
                if step is not None and (last_step is None or step <= last_step):
                    found.append(record)
    except OSError:
        pass
    return found


def training_facts(weights_folder: Path) -> dict:
    """What the run that wrote `weights_folder` (RUN/checkpoints/step_N/model) left about itself. trainer_state.json
    is read by its one validating loader (a malformed one is a one-line error); the other run files only supply
    quoted values, each checked or escaped where the card uses it."""
    facts: dict = {}
    step_dir = weights_folder.parent
    state = read_trainer_state(step_dir, required=()) if (step_dir / STATE_FILE).is_file() else {}
    if state.get("step") is not None:
        facts["step"] = state["step"]
        if state.get("tokens_per_step"):
            facts["tokens"] = state["step"] * state["tokens_per_step"]  # both bounded by the loader
    run_dir = step_dir.parent.parent if step_dir.parent.name == "checkpoints" else None
    if run_dir is None:
        return facts
    config = _read_run_file(run_dir / "config.yaml", yaml.safe_load)
    facts["config"] = config
    data_dir = config.get("data") if isinstance(config.get("data"), dict) else {}
    data_dir = data_dir.get("dir")
    if isinstance(data_dir, str) and data_dir:
        facts["data_dir"] = data_dir
        facts["manifest"] = _read_run_file(Path(data_dir) / "manifest.json", json.loads)
    evaluations = _evaluations(run_dir / "metrics.jsonl", facts.get("step"))
    if evaluations:
        facts["evaluation"] = evaluations[-1]  # the last one at or before this checkpoint's step
    return facts


def _number(value, digits: int = 4) -> str:
    value = _real(value)
    return "unknown" if value is None else f"{value:.{digits}f}"


def _section(facts: dict, key: str) -> dict:
    value = facts.get(key)
    return value if isinstance(value, dict) else {}


def model_card(model: GPT, tokenizer: str, eot: int | None, facts: dict, name: str) -> str:
    c = model.config
    # As GPT2LMHeadModel / Qwen3ForCausalLM count them: the embedding (and an untied head) without our padding rows.
    padding = (c.padded_vocab_size - c.vocab_size) * c.n_embd * (1 if c.tied else 2)
    total = model.num_parameters(non_embedding=False) - padding
    family, architecture = architecture_row(c)
    title = "GPT-2" if family == "gpt2" else "Qwen3"
    manifest = _section(facts, "manifest")
    totals = _section(manifest, "totals")
    evaluation = _section(facts, "evaluation")
    hellaswag = next((evaluation[k] for k in HELLASWAG_KEYS if _real(evaluation.get(k)) is not None), None)
    config = _section(facts, "config")
    optim, train = _section(config, "optim"), _section(config, "train")
    tokens = f"{facts['tokens']:,} tokens ({facts['step']:,} steps)" if "tokens" in facts else "unknown"
    data = md(facts.get("data_dir"))
    if manifest:
        counts = [_count(totals.get(key)) for key in ("train_tokens", "documents")]
        data += (f" — {md(None) if counts[0] is None else f'{counts[0]:,}'} training tokens in "
                 f"{md(None) if counts[1] is None else f'{counts[1]:,}'} documents, made by "
                 f"{md(manifest.get('command'), code=True)}")
        cleaning = _section(manifest, "cleaning")
        if cleaning:
            data += f"; cleaning recipe {md(cleaning.get('recipe'), code=True)}"
    return f"""---
# license: fill in the license you release these weights under (and check the terms of the training data)
library_name: transformers
pipeline_tag: text-generation
tags: [{family}, gptstack]
---

# {md(name)}

A {title}-architecture language model pretrained from scratch with gptstack (datatrove shards, DeepSpeed ZeRO).

## Model

| | |
|---|---|
| architecture | {architecture} |
| parameters | {total:,} ({"token and position embeddings" if family == "gpt2" else "embedding and head"} included) |
| context length | {c.block_size} tokens |
| vocabulary | {c.vocab_size:,} tokens |

## Training

| | |
|---|---|
| trained on | {tokens} |
| data | {data} |
| optimizer | AdamW, lr {md(optim.get('lr'))} ({md(optim.get('schedule'))} schedule), weight decay {md(optim.get('weight_decay'))} |
| precision | {md(train.get('precision'))}, ZeRO stage {md(train.get('zero_stage'))} |

## Evaluation (step {md(_count(evaluation.get('step')))})

| metric | value |
|---|---|
| validation loss (nats per token, held-out shard) | {_number(evaluation.get('val_loss'))} |
| validation bits per byte (compares across tokenizers) | {_number(evaluation.get('val_bpb'))} |
| HellaSwag accuracy, build-nanogpt's metric (ending with the lowest mean per-token loss; not lm-eval's acc_norm) | {_number(hellaswag)} |

lm-evaluation-harness numbers for this folder: see gptstack's docs/training.md, "Evaluating an exported model".

## Tokenizer

{md(tokenizer, code=True)}; its files are in this folder. End-of-text (id {md(_count(eot))}) separates
documents in training; it is the eos token, so `generate()` stops there (generation_config.json).

## How to use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("PATH")
model = AutoModelForCausalLM.from_pretrained("PATH")
inputs = tokenizer("The history of the city", return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=50, do_sample=True, top_k=50)
print(tokenizer.decode(output[0], skip_special_tokens=True))
```

## License

Not set. Add a `license:` line to the header of this file before publishing.
"""


def architecture_row(c) -> tuple[str, str]:
    """(the family's tag, the card's architecture row) of a model config."""
    if c.arch == "qwen3":
        head = "tied to" if c.tied else "untied from"
        return "qwen3", (f"Qwen3 (`Qwen3ForCausalLM`): {c.n_layer} layers, {c.n_head} query / {c.kv_heads} key-value "
                         f"heads of {c.head_size}, width {c.n_embd}, SwiGLU {c.mlp_size}, RMSNorm, rotary positions "
                         f"(theta {c.rope_theta:g}), QK-norm, no biases, output head {head} the input embedding")
    return "gpt2", (f"GPT-2 (`GPT2LMHeadModel`): {c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, GELU (tanh), "
                    f"pre-LayerNorm, tied input/output embedding")


def write_export_extras(folder: Path, model: GPT, weights_folder: Path, tokenizer: str) -> None:
    """generation_config.json and README.md for an export in `folder`; eos as written in its config.json."""
    folder = Path(folder)
    eot = _count(_read_run_file(folder / "config.json", json.loads).get("eos_token_id"))  # ours, just written
    write_generation_config(folder, eot, model.config.block_size)
    facts = training_facts(Path(weights_folder))
    atomic_write(folder / MODEL_CARD, model_card(model, tokenizer, eot, facts, folder.resolve().name))
