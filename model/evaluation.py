"""Evaluations during training: validation loss on the val shards, and HellaSwag accuracy.

HellaSwag the build-nanogpt way, logged as `hellaswag_acc_token_norm`: each example is a context (the file's
`ctx`) and 4 candidate endings; the model scores each ending by its mean cross-entropy per *token* given the
context (ending tokens only), and the ending with the lowest mean loss is its answer. That is accuracy with the
log-likelihood normalised by the ending's token count. It is not lm-evaluation-harness's `acc_norm`, which
normalises by the ending's length in *bytes* and also puts the activity label before the context ("Roof shingle
removal: A man is ..."), so the two numbers differ; docs/training.md ("Evaluating an exported model") gives the lm-eval command
for the standard ones. For GPT-2 124M, build-nanogpt's hellaswag.py reports 0.2955 with this metric and
0.3114 for lm-eval's acc_norm; chance is 0.25.
"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from gptstack.files import MAX_RECORD_BYTES, atomic_write, bounded_lines, copy_at_most
from gptstack.formats import check_value, field, short
from model.config import ConfigError

HELLASWAG_METRIC = "hellaswag_acc_token_norm"  # the metrics.jsonl key: what it is, not what it resembles
HELLASWAG_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
HELLASWAG_CACHE = Path.home() / ".cache" / "gptstack" / "hellaswag_val.jsonl"


def _all_reduce_sum(values: list[float], device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


@torch.no_grad()
def validation_loss(engine, val_batches, num_batches: int, device) -> float:
    """Mean loss over the first num_batches micro-batches of every rank (the same windows each time)."""
    val_batches.reset()
    engine.module.eval()
    total = 0.0
    for _ in range(num_batches):
        x, y = val_batches.next_batch()
        _, loss = engine(x.to(device), y.to(device))
        total += loss.float().item()
    engine.module.train()
    summed, count = _all_reduce_sum([total, num_batches], device)
    return summed / count


def _download_hellaswag(temp: Path) -> None:
    """The file (about 11 MB) into `temp`; a body over MAX_RECORD_BYTES is refused, never written to the disk's end."""
    with urllib.request.urlopen(HELLASWAG_URL, timeout=120) as response, open(temp, "xb") as out:
        if not copy_at_most(response, out):
            raise ConfigError(f"eval.hellaswag=download: {HELLASWAG_URL} sent more than {MAX_RECORD_BYTES:,} "
                              f"bytes; give the path of a local hellaswag_val.jsonl instead")


def hellaswag_path(setting: str) -> Path:
    """`eval.hellaswag`: a local jsonl, or "download" (fetched once into ~/.cache/gptstack)."""
    if setting == "download":
        if not HELLASWAG_CACHE.is_file():
            HELLASWAG_CACHE.parent.mkdir(parents=True, exist_ok=True)
            try:
                atomic_write(HELLASWAG_CACHE, _download_hellaswag)
            except OSError as e:
                raise ConfigError(f"eval.hellaswag=download: cannot fetch {HELLASWAG_URL} ({e}); "
                                  f"give the path of a local hellaswag_val.jsonl instead") from None
        return HELLASWAG_CACHE
    path = Path(setting)
    if not path.is_file():
        raise ConfigError(f"eval.hellaswag: {path} does not exist (a hellaswag_val.jsonl, or 'download')")
    return path


def load_hellaswag(path: Path, limit: int | None = None) -> list[dict]:
    """Examples {"ctx": str, "endings": [4 str], "label": 0-3}, checked line by line when the run starts (a bad
    record would otherwise fail at the first evaluation, hours in), in file order. Every problem is a ConfigError
    naming the file and line. A label may be a digit string, as Hugging Face's copy of the file writes it."""
    examples = []
    with open(path, "rb") as f:
        for line_number, line in enumerate(bounded_lines(f), 1):
            where = f"{path}:{line_number}"
            if line is None:
                raise ConfigError(f"{where}: a line over {MAX_RECORD_BYTES:,} bytes; not a HellaSwag record")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError(f"{where}: not UTF-8 text (byte {e.start})") from None
            if not text.strip():
                continue
            examples.append(hellaswag_example(text, where))
            if limit is not None and len(examples) >= limit:
                break
    if not examples:
        raise ConfigError(f"{path}: no HellaSwag examples")
    return examples


def hellaswag_example(text: str, where: str) -> dict:
    """One line of the file as an example, each field of its type (ConfigError naming `where` otherwise)."""
    try:
        example = json.loads(text)
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply; not a HellaSwag record") from None
    except ValueError as e:
        raise ConfigError(f"{where}: not a HellaSwag record ({' '.join(str(e).split())[:100]})") from None
    check_value(example, dict, f"{where}: the record", ConfigError)
    at = f"{where}: "
    ctx = field(example, "ctx", str, at, ConfigError)
    endings = field(example, "endings", list, at, ConfigError)
    if len(endings) != 4:
        raise ConfigError(f"{at}expected 4 endings, found {len(endings)}")
    for number, ending in enumerate(endings):
        check_value(ending, str, f"{at}endings[{number}]", ConfigError)
    label = field(example, "label", (int, str), at, ConfigError)
    if label not in (0, 1, 2, 3, "0", "1", "2", "3"):
        raise ConfigError(f"{at}label must be 0, 1, 2 or 3, not {short(label)}")
    return {"ctx": ctx, "endings": endings, "label": int(label)}


def render_example(example: dict, encoding, block_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(tokens (4, T), mask (4, T) = 1 on ending tokens, label). Endings get a leading space, as GPT-2 saw
    text; contexts too long for block_size keep their last tokens."""
    context = encoding.encode_ordinary(example["ctx"])
    endings = [encoding.encode_ordinary(" " + ending) for ending in example["endings"]]
    rows, masks = [], []
    for ending in endings:
        ending = ending[:block_size - 1]
        keep = block_size - len(ending)
        row = context[-keep:] + ending
        rows.append(row)
        masks.append([0] * (len(row) - len(ending)) + [1] * len(ending))
    width = max(len(r) for r in rows)
    tokens = torch.zeros(4, width, dtype=torch.long)
    mask = torch.zeros(4, width, dtype=torch.long)
    for i, (row, row_mask) in enumerate(zip(rows, masks)):
        tokens[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row_mask)] = torch.tensor(row_mask)
    return tokens, mask, example["label"]


@torch.no_grad()
def hellaswag_accuracy(engine, examples: list[dict], encoding, rank: int, world_size: int, device) -> float:
    """Fraction of examples whose ending with the lowest mean per-token loss is the right one (build-nanogpt's
    metric, see the module docstring), examples spread over the ranks.

    Every rank runs the same number of forward passes (the last ones on a repeated example that is not
    counted), because under ZeRO-3 each forward gathers parameters collectively.
    """
    block_size = engine.module.config.block_size
    per_rank = -(-len(examples) // world_size)
    correct = counted = 0
    engine.module.eval()
    for i in range(per_rank):
        index = rank + i * world_size
        real = index < len(examples)
        tokens, mask, label = render_example(examples[index if real else 0], encoding, block_size)
        tokens, mask = tokens.to(device), mask.to(device)
        logits, _ = engine(tokens)
        # loss of token t+1 given tokens <= t, on the ending positions only
        shift_logits = logits[:, :-1].float()
        shift_tokens, shift_mask = tokens[:, 1:], mask[:, 1:]
        losses = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_tokens.reshape(-1),
                                 reduction="none").view(shift_tokens.shape)
        mean_loss = (losses * shift_mask).sum(dim=1) / shift_mask.sum(dim=1)
        if real:
            correct += int(mean_loss.argmin().item() == label)
            counted += 1
    engine.module.train()
    total_correct, total = _all_reduce_sum([correct, counted], device)
    return total_correct / total
