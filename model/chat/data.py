"""Conversations for fine-tuning: read, checked, encoded in ChatML (template.py), laid into rows, served in batches.

Sources (`sft.data`, `sft.val_data`):
    FILE.jsonl                one conversation per line, each line one of
                                {"messages": [{"role": ..., "content": ...}, ...]}          OpenAI form
                                {"instruction": ..., "input": ..., "output": ..., "system"?} Alpaca form
                                {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}  ShareGPT form
                                {"conversations": [{"role": ..., "content": ...}]}          MiniMind's form
    hf:NAME[:CONFIG]:SPLIT    the same forms streamed from the Hugging Face Hub (needs sft.limit), e.g.
                                hf:HuggingFaceTB/smoltalk:all:train

Every conversation is checked and encoded before anything is written: a bad one is one InputError naming FILE:LINE
(or the Hub row). One longer than a row (seq_len + 1 tokens) is an error too, or skipped and counted with
sft.too_long=skip. Rows are built once, identically on every rank: `pack` lays whole conversations end to end
(never split; no attention mask between them, as nanochat and MiniMind pack too) and pads the rest; `pad` puts one
conversation in each row. Padding and every non-assistant token are target -1 (ignored by the models' loss).

The batch stream is a global row counter over per-epoch permutations (seeded by data.seed and the epoch): a
checkpoint keeps the counter, so a resumed run takes exactly the rows it would have taken (and with any world size).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from gptstack.errors import InputError
from gptstack.formats import short
from model.chat.template import ChatFormat, check_messages

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
MAX_LINE_BYTES = 64 << 20


def to_messages(record, where: str, form: str = "auto") -> list:
    """One jsonl record as OpenAI messages (checked later by check_messages)."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: a {type(record).__name__}, not a JSON object")
    if form in ("auto", "messages") and "messages" in record:
        return record["messages"]
    if form == "auto" and "conversations" in record and isinstance(record["conversations"], list):
        if all(isinstance(turn, dict) and "role" in turn for turn in record["conversations"]):
            return record["conversations"]  # MiniMind's sft_*.jsonl: OpenAI turns under "conversations"
        turns = []
        for index, turn in enumerate(record["conversations"]):
            if not isinstance(turn, dict) or turn.get("from") not in SHAREGPT_ROLES:
                role = turn.get("from") if isinstance(turn, dict) else turn
                raise InputError(f"{where}: conversations[{index}]: role {short(role)} "
                                 f"is not one of {', '.join(SHAREGPT_ROLES)}")
            turns.append({"role": SHAREGPT_ROLES[turn["from"]], "content": turn.get("value")})
        return turns
    if form in ("auto", "alpaca") and "instruction" in record:
        for key in ("instruction", "input", "output", "system"):
            if record.get(key) is not None and not isinstance(record[key], str):
                raise InputError(f"{where}: {key} is {type(record[key]).__name__}, not a string")
        if not record.get("output"):
            raise InputError(f"{where}: no output (the assistant's answer: nothing to learn from)")
        prompt = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        system = [{"role": "system", "content": record["system"]}] if record.get("system") else []
        return system + [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    wanted = {"auto": "messages, instruction/output or conversations", "messages": "messages",
              "alpaca": "instruction/input/output"}[form]
    raise InputError(f"{where}: no {wanted} field (keys: {short(', '.join(map(str, record))[:80])})")


def read_records(spec: str, limit: int | None):
    """(where, record) for each conversation of a jsonl file or a Hub split, at most `limit`."""
    if spec.startswith("hf:"):
        yield from _hub_records(spec, limit)
        return
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"{spec}: no such file (a .jsonl of conversations, or hf:NAME[:CONFIG]:SPLIT)")
    count = 0
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            if limit is not None and count >= limit:
                return
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"{path}:{number}: a line of {len(raw):,} bytes (at most {MAX_LINE_BYTES:,})")
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise InputError(f"{path}:{number}: not a JSON line ({' '.join(str(e).split())[:120]})") from None
            count += 1
            yield f"{path}:{number}", record


def _hub_records(spec: str, limit: int | None):
    parts = spec[3:].split(":")
    if len(parts) not in (2, 3) or not all(parts) or limit is None:
        raise InputError(f"--data {spec}: use hf:NAME[:CONFIG]:SPLIT with sft.limit=N (the set is streamed)")
    name, config, split = (parts[0], None, parts[1]) if len(parts) == 2 else parts
    from datasets import load_dataset
    try:
        stream = load_dataset(name, config, split=split, streaming=True)
        for index, record in enumerate(stream):
            if index >= limit:
                return
            yield f"{spec} row {index}", record
    except InputError:
        raise
    except Exception as e:  # no network, unknown set or split: one line
        raise InputError(f"--data {spec}: cannot stream it ({type(e).__name__}: {' '.join(str(e).split())[:200]})") \
            from None


def encode_all(spec: str, chat: ChatFormat, seq_len: int, form: str = "auto", limit: int | None = None,
               too_long: str = "error") -> tuple[list[tuple[list[int], list[bool]]], int]:
    """Every conversation of `spec`, checked and encoded; (conversations, how many were skipped as too long)."""
    conversations, skipped = [], 0
    for where, record in read_records(spec, limit):
        messages = check_messages(to_messages(record, where, form), where, require_assistant=True)
        ids, mask = chat.encode_conversation(messages)
        if len(ids) > seq_len + 1:
            if too_long == "skip":
                skipped += 1
                continue
            raise InputError(f"{where}: {len(ids):,} tokens, longer than the context (data.seq_len {seq_len} + 1); "
                             f"shorten it, raise data.seq_len, or set sft.too_long=skip")
        conversations.append((ids, mask))
    if not conversations:
        raise InputError(f"{spec}: no conversations" + (f" ({skipped} skipped as too long)" if skipped else ""))
    return conversations, skipped


def build_rows(conversations, seq_len: int, packing: str, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, targets) of shape (rows, seq_len + 1): pack = whole conversations end to end, first fit in order;
    pad = one per row. targets[r, t] is ids[r, t] where that token is learned, else -1."""
    width = seq_len + 1
    rows: list[list[tuple[list[int], list[bool]]]] = []
    used: list[int] = []
    for conversation in conversations:
        if packing == "pack" and rows and used[-1] + len(conversation[0]) <= width:
            rows[-1].append(conversation)
            used[-1] += len(conversation[0])
        else:
            rows.append([conversation])
            used.append(len(conversation[0]))
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    targets = np.full((len(rows), width), -1, dtype=np.int64)
    for r, row in enumerate(rows):
        at = 0
        for conversation_ids, mask in row:
            end = at + len(conversation_ids)
            ids[r, at:end] = conversation_ids
            targets[r, at:end] = np.where(mask, conversation_ids, -1)
            at = end
    return ids, targets


class RowBatches:
    """Micro-batches (x, y) of this rank from the rows: x = ids[:, :-1], y = targets[:, 1:]. Global row counter
    `consumed` (the same on every rank); per-epoch permutations from `seed` + epoch."""

    def __init__(self, ids: np.ndarray, targets: np.ndarray, micro_batch: int, rank: int, world_size: int,
                 seed: int, shuffle: bool):
        self.ids, self.targets = ids, targets
        self.micro_batch, self.rank, self.world_size = micro_batch, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.consumed = 0
        self._order: tuple[int, np.ndarray] | None = None

    def _row(self, index: int) -> int:
        epoch, within = divmod(index, len(self.ids))
        if not self.shuffle:
            return within
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.ids)))
        return int(self._order[1][within])

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.consumed + self.rank * self.micro_batch
        rows = [self._row(start + j) for j in range(self.micro_batch)]
        self.consumed += self.micro_batch * self.world_size
        return (torch.from_numpy(self.ids[rows, :-1].copy()), torch.from_numpy(self.targets[rows, 1:].copy()))

    def epoch(self) -> float:
        return self.consumed / len(self.ids)

    def state_dict(self) -> dict:
        return {"samples_consumed": self.consumed, "seed": self.seed, "shuffle": self.shuffle,
                "seq_len": self.ids.shape[1] - 1, "windows_per_epoch": len(self.ids)}

    def load_state_dict(self, state: dict, where: str) -> None:
        if state.get("windows_per_epoch") not in (None, len(self.ids)):
            raise InputError(f"{where}: was trained on {state['windows_per_epoch']} rows of conversations, these "
                             f"data make {len(self.ids)}: the conversations (or sft.packing) changed")
        self.consumed = state["samples_consumed"]


def fingerprint(ids: np.ndarray, targets: np.ndarray) -> str:
    digest = hashlib.sha256(ids.tobytes())
    digest.update(targets.tobytes())
    return digest.hexdigest()[:32]
