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
from pathlib import Path

import yaml

from gptstack.files import atomic_write
from model.gpt import GPT

GENERATION_CONFIG = "generation_config.json"
MODEL_CARD = "README.md"
HELLASWAG_KEYS = ("hellaswag_acc_token_norm", "hellaswag_acc")  # the second: runs logged before the rename


def write_generation_config(folder: Path, eot: int | None, block_size: int) -> None:
    from transformers import GenerationConfig

    generation = GenerationConfig(bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, max_length=block_size)
    atomic_write(folder / GENERATION_CONFIG, generation.to_json_string(use_diff=True))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def training_facts(weights_folder: Path) -> dict:
    """What the run that wrote `weights_folder` (RUN/checkpoints/step_N/model) left about itself."""
    facts: dict = {}
    step_dir = weights_folder.parent
    state = _read_json(step_dir / "trainer_state.json")
    if "step" in state:
        facts["step"] = state["step"]
        if state.get("tokens_per_step"):
            facts["tokens"] = state["step"] * state["tokens_per_step"]
    run_dir = step_dir.parent.parent if step_dir.parent.name == "checkpoints" else None
    if run_dir is None:
        return facts
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    facts["config"] = config
    data_dir = (config.get("data") or {}).get("dir")
    if data_dir:
        facts["data_dir"] = data_dir
        facts["manifest"] = _read_json(Path(data_dir) / "manifest.json")
    evaluations = []
    try:
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "val_loss" in record and record.get("step", 0) <= facts.get("step", float("inf")):
                evaluations.append(record)
    except OSError:
        pass
    if evaluations:
        facts["evaluation"] = evaluations[-1]  # the last one at or before this checkpoint's step
    return facts


def _number(value, digits: int = 4) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}"


def model_card(model: GPT, tokenizer: str, eot: int | None, facts: dict, name: str) -> str:
    c = model.config
    # As GPT2LMHeadModel counts them: the embedding without our padding rows (tied, so counted once).
    total = model.num_parameters(non_embedding=False) - (c.padded_vocab_size - c.vocab_size) * c.n_embd
    manifest = facts.get("manifest") or {}
    totals = manifest.get("totals") or {}
    evaluation = facts.get("evaluation") or {}
    hellaswag = next((evaluation[k] for k in HELLASWAG_KEYS if evaluation.get(k) is not None), None)
    optim, train = (facts.get("config") or {}).get("optim") or {}, (facts.get("config") or {}).get("train") or {}
    tokens = f"{facts['tokens']:,} tokens ({facts['step']:,} steps)" if "tokens" in facts else "unknown"
    data = facts.get("data_dir", "unknown")
    if manifest:
        data += (f" — {totals.get('train_tokens', 0):,} training tokens in {totals.get('documents', 0):,} documents"
                 f", made by `{manifest.get('command', '?')}`")
        if manifest.get("cleaning"):
            data += f"; cleaning recipe `{manifest['cleaning'].get('recipe')}`"
    return f"""---
# license: fill in the license you release these weights under (and check the terms of the training data)
library_name: transformers
pipeline_tag: text-generation
tags: [gpt2, gptstack]
---

# {name}

A GPT-2-architecture language model pretrained from scratch with gptstack (datatrove shards, DeepSpeed ZeRO).

## Model

| | |
|---|---|
| architecture | GPT-2 (`GPT2LMHeadModel`): {c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, GELU (tanh), pre-LayerNorm, tied input/output embedding |
| parameters | {total:,} (token and position embeddings included) |
| context length | {c.block_size} tokens |
| vocabulary | {c.vocab_size:,} tokens |

## Training

| | |
|---|---|
| trained on | {tokens} |
| data | {data} |
| optimizer | AdamW, lr {optim.get('lr', 'unknown')} ({optim.get('schedule', 'unknown')} schedule), weight decay {optim.get('weight_decay', 'unknown')} |
| precision | {train.get('precision', 'unknown')}, ZeRO stage {train.get('zero_stage', 'unknown')} |

## Evaluation (step {evaluation.get('step', 'unknown')})

| metric | value |
|---|---|
| validation loss (nats per token, held-out shard) | {_number(evaluation.get('val_loss'))} |
| validation bits per byte (compares across tokenizers) | {_number(evaluation.get('val_bpb'))} |
| HellaSwag accuracy, build-nanogpt's metric (ending with the lowest mean per-token loss; not lm-eval's acc_norm) | {_number(hellaswag)} |

lm-evaluation-harness numbers for this folder: see gptstack's docs/training.md, "Evaluating an exported model".

## Tokenizer

`{tokenizer}`; its files are in this folder. End-of-text (id {eot if eot is not None else 'unknown'}) separates
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


def write_export_extras(folder: Path, model: GPT, weights_folder: Path, tokenizer: str) -> None:
    """generation_config.json and README.md for an export in `folder`; eos as written in its config.json."""
    folder = Path(folder)
    eot = _read_json(folder / "config.json").get("eos_token_id")
    write_generation_config(folder, eot, model.config.block_size)
    facts = training_facts(Path(weights_folder))
    atomic_write(folder / MODEL_CARD, model_card(model, tokenizer, eot, facts, folder.resolve().name))
