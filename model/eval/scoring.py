"""Scoring examples by log-likelihood, in batches, on one rank or split across ranks.

Every choice of every example becomes one row: context ids + continuation ids, cut from the left to the model's
length as lm-eval cuts. Rows are sorted by length and run `batch_size` at a time (right-padded; causal attention
never lets a real token see the padding), and rows that are the same ids are computed once (the choices of a
language-modelling task, repeated options). From each row come the continuation's summed log-likelihood and whether
greedy decoding reproduces it. An example's answer is the choice with the highest log-likelihood, normalised by
  - none: nothing (lm-eval `acc`),
  - token: the continuation's token count (nanochat's CORE, build-nanogpt's HellaSwag),
  - byte: the choice's length in UTF-8 bytes (lm-eval `acc_bytes`; its `acc_norm` divides by characters, the same
    for ASCII text);
and a language-modelling example is right when the greedy continuation is exact (lm-eval's LAMBADA `acc`).
All three normalisations are kept; the task's own (gptstack.eval_data.TaskSpec.normalisation) is its accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gptstack.eval_data import TASKS, Example, fewshot_prefix, load_examples, requests
from model.eval.lm import EvalModel, encode_pair

NORMALISATIONS = ("none", "token", "byte")


@dataclass
class Decision:
    """One example's outcome: the choice picked under each normalisation, and the log-likelihoods."""
    task: str
    index: int
    gold: int
    picks: dict[str, int]
    loglikelihoods: list[float]
    correct: bool  # under the task's own normalisation (greedy exactness for language modelling)


def _row(lm: EvalModel, context: str, continuation: str) -> tuple[tuple[int, ...], int]:
    context_ids, continuation_ids = encode_pair(lm, context, continuation)
    ids = (context_ids + continuation_ids)[-(lm.max_length + 1):]
    # a continuation longer than the model's context is scored on its last max_length tokens (the first has no
    # position left to be predicted from)
    return tuple(ids), min(len(continuation_ids), len(ids) - 1)


@torch.no_grad()
def score_rows(lm: EvalModel, rows: list[tuple[tuple[int, ...], int]], batch_size: int,
               progress=None) -> list[tuple[float, bool]]:
    """(summed log-likelihood of the last n ids, greedy == those ids) per (ids, n); identical rows run once."""
    unique = list(dict.fromkeys(rows))
    order = sorted(range(len(unique)), key=lambda i: -len(unique[i][0]))
    out: dict[tuple, tuple[float, bool]] = {}
    # at most batch_size rows and about max_tokens ids a batch: the logits are rows x width x vocabulary floats
    max_tokens = 32768 if lm.device.type == "cuda" else 4096
    batches, start = [], 0
    while start < len(order):
        width = len(unique[order[start]][0])
        size = max(1, min(batch_size, max_tokens // width))
        batches.append(order[start:start + size])
        start += size
    for members in batches:
        batch = [unique[i] for i in members]
        width = len(batch[0][0]) - 1
        idx = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (ids, _) in enumerate(batch):
            idx[r, : len(ids) - 1] = torch.tensor(ids[:-1])
        at_rows = torch.tensor([r for r, (ids, n) in enumerate(batch) for _ in range(n)], device=lm.device)
        at_columns = torch.tensor([c for ids, n in batch for c in range(len(ids) - 1 - n, len(ids) - 1)],
                                  device=lm.device)
        logits = lm.logits_at(idx.to(lm.device), at_rows, at_columns).float()  # (all scored positions, V)
        targets = torch.tensor([t for ids, n in batch for t in ids[-n:]], device=logits.device)
        # one pass over the batch's positions: log p(target) = logit(target) - logsumexp(logits)
        token_ll = (logits.gather(1, targets[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)).tolist()
        token_greedy = (logits.argmax(dim=-1) == targets).tolist()
        offset = 0
        for ids, n in batch:
            out[(ids, n)] = (sum(token_ll[offset:offset + n]), all(token_greedy[offset:offset + n]))
            offset += n
        if progress is not None:
            progress.update(len(batch))
    return [out[row] for row in rows]


def _decide(example: Example, kind: str, primary: str, scores: list[tuple[float, bool]],
            row_tokens: list[int]) -> Decision:
    lls = [ll for ll, _ in scores]
    if kind == "lm":
        return Decision(example.task, example.index, example.gold, {"none": 0, "token": 0, "byte": 0}, lls,
                        scores[0][1])
    nbytes = [max(1, len(choice.encode("utf-8"))) for choice in example.choices]
    keys = {"none": lls, "token": [ll / max(1, n) for ll, n in zip(lls, row_tokens)],
            "byte": [ll / n for ll, n in zip(lls, nbytes)]}
    # the first maximum, as numpy's argmax (lm-eval) picks it
    picks = {name: max(range(len(values)), key=lambda i: (values[i], -i)) for name, values in keys.items()}
    return Decision(example.task, example.index, example.gold, picks, lls, picks[primary] == example.gold)


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def decide_examples(lm: EvalModel, tasks: list[str], limit: int | None, batch_size: int, shots: int | None = None,
                    progress_factory=None) -> list[Decision]:
    """This rank's share of every task's examples (example i goes to rank i % world), decided."""
    rank, world = rank_and_world()
    plans = []  # (example, kind, primary, first row, row count)
    rows: list[tuple[tuple[int, ...], int]] = []
    for task in tasks:
        spec = TASKS[task]
        examples = load_examples(task, limit)
        count = spec.shots if shots is None else shots
        pool = load_examples(task, count + 1) if count else []
        for example in examples[rank::world]:
            prefix = fewshot_prefix(task, example, count, pool)
            first = len(rows)
            rows += [_row(lm, prefix + context, continuation) for context, continuation in requests(example)]
            plans.append((example, spec.kind, spec.normalisation, first, len(rows) - first))
    progress = progress_factory(len(set(rows))) if progress_factory else None
    scores = score_rows(lm, rows, batch_size, progress)
    if progress is not None:
        progress.close()
    return [_decide(example, kind, primary, scores[first:first + n], [rows[i][1] for i in range(first, first + n)])
            for example, kind, primary, first, n in plans]


def summarise(decisions: list[Decision], tasks: list[str], device=None) -> dict[str, dict]:
    """Per task: accuracy (own normalisation), stderr, n, centred accuracy and all three normalisations, summed
    over ranks. stderr = sqrt(p (1 - p) / (n - 1)), lm-eval's sample standard error of a mean of 0/1 values."""
    counts = torch.zeros((len(tasks), 5), dtype=torch.float64)
    where = {task: i for i, task in enumerate(tasks)}
    for d in decisions:
        row = counts[where[d.task]]
        row[0] += 1
        row[1] += d.correct
        for k, name in enumerate(NORMALISATIONS):
            row[2 + k] += d.picks[name] == d.gold if TASKS[d.task].kind != "lm" else d.correct
    if dist.is_available() and dist.is_initialized():
        buffer = counts.to(device) if device is not None and dist.get_backend() == "nccl" else counts
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        counts = buffer.cpu()
    results = {}
    for task, i in where.items():
        n, correct = int(counts[i, 0]), float(counts[i, 1])
        spec = TASKS[task]
        accuracy = correct / n if n else float("nan")
        stderr = math.sqrt(accuracy * (1 - accuracy) / (n - 1)) if n > 1 else float("nan")
        results[task] = {
            "accuracy": accuracy, "stderr": stderr, "n": n, "normalisation": spec.normalisation, "kind": spec.kind,
            "baseline": spec.baseline, "centered": (accuracy - spec.baseline) / (1 - spec.baseline),
            "by_normalisation": {name: float(counts[i, 2 + k]) / n if n else float("nan")
                                 for k, name in enumerate(NORMALISATIONS)},
        }
    return results


def centered_mean(results: dict[str, dict]) -> float:
    """DCLM's CORE: the mean over tasks of (accuracy - random) / (1 - random)."""
    return sum(r["centered"] for r in results.values()) / len(results)


def evaluate(lm: EvalModel, tasks: list[str], limit: int | None = None, batch_size: int = 16,
             shots: int | None = None, progress_factory=None) -> tuple[dict[str, dict], list[Decision]]:
    """(per-task results summed over all ranks, this rank's decisions)."""
    decisions = decide_examples(lm, tasks, limit, batch_size, shots, progress_factory)
    return summarise(decisions, tasks, lm.device), decisions
