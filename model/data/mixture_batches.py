"""Training batches from a mixture of shard folders: `MixtureBatches`, the several-folder twin of TokenBatches.

Sources are given as `data.sources` in a config (a list of {dir, weight, name?}) or on the command line as
`--data zh=data/zh-web:0.6,en=data/fineweb-edu:0.4` (`parse_data_argument`). Each source is cut into windows
exactly as model/data/batches.py cuts one folder (`TokenBatches(..., shuffle=False).window(w)` is window w of the
folder); model/data/mixture.py decides which source and which window every item of the global stream is. As with one folder,
the state is the global sample counter `samples_consumed` (plus the mixture's phase, see model/data/mixture.py), so
rank r of a step takes items [c + r*B, c + (r+1)*B) and a resume on any number of ranks continues the stream.
With `data.packing: bos_aligned` each source packs its own documents (model/data/packing.py): item p of a source's
own stream is row p of its packed rows instead of a window; the choice of source per item is the same.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from gptstack.errors import ShardError
from model.data.batches import TokenBatches
from model.data.mixture import MixtureError, MixtureSampler, MixtureSource, source_key
from model.data.packing import DocumentPacker, check_packing, packing_state, split_documents
from pipeline.shards import ShardFolder
from pipeline.tokenizer import same_tokenizer, tokenizer_label


@dataclass(frozen=True)
class SourceSpec:
    name: str
    dir: str
    weight: float


def source_specs(entries: list[dict], where: str = "data.sources") -> list[SourceSpec]:
    """Check `data.sources` entries ({dir, weight, name?}); a missing name is the folder's name."""
    if not isinstance(entries, list) or not entries:
        raise MixtureError(f"{where}: expected a non-empty list of {{dir, weight, name}} entries")
    specs = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("dir"), str) or not entry["dir"]:
            raise MixtureError(f"{where}[{number}]: expected {{dir: FOLDER, weight: NUMBER, name: optional}}, "
                               f"got {entry!r}")
        unknown = set(entry) - {"dir", "weight", "name"}
        if unknown:
            raise MixtureError(f"{where}[{number}]: unknown key(s) {', '.join(sorted(unknown))}; "
                               f"an entry has dir, weight, name")
        weight = entry.get("weight")
        if isinstance(weight, str):  # config files are read as text; the key's type reads it (model/config.py)
            try:
                weight = float(weight)
            except ValueError:
                pass
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
            raise MixtureError(f"{where}[{number}] ({entry['dir']}): weight {weight!r} must be a finite number >= 0")
        name = entry.get("name") or Path(entry["dir"].rstrip("/")).name
        specs.append(SourceSpec(str(name), entry["dir"], float(weight)))
    total = sum(spec.weight for spec in specs)  # 1e308 + 1e308 is inf: the fractions would all be 0 or nan
    if not 0 < total < math.inf:
        raise MixtureError(f"{where}: the weights add up to {total}; they must add up to a finite number > 0 "
                           f"(they are relative: 0.6,0.4 and 3,2 are the same mixture)")
    names = [s.name for s in specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise MixtureError(f"{where}: two sources are named {', '.join(duplicated)}; give them distinct names")
    return specs


def parse_data_argument(text: str) -> list[dict] | None:
    """`--data DIR` -> None (one folder, data.dir); `--data [NAME=]DIR:WEIGHT,...` -> data.sources entries."""
    items = [item.strip() for item in text.split(",")]
    if len(items) == 1 and ":" not in items[0]:
        return None
    entries = []
    for item in items:
        name, _, rest = item.rpartition("=") if "=" in item.split(":")[0] else ("", "", item)
        folder, colon, weight = rest.rpartition(":")
        try:
            value = float(weight)
        except ValueError:
            value = None
        if not colon or not folder or value is None:
            raise MixtureError(f"--data {text!r}: each source is [NAME=]DIR:WEIGHT, e.g. "
                               f"--data zh=data/zh-web:0.6,en=data/fineweb-edu:0.4 (got {item!r})")
        entries.append({"dir": folder, "weight": value, **({"name": name} if name else {})})
    return entries


def data_flag_values(data: str | None) -> dict:
    """The config values `--data` stands for: one folder (data.dir) or a mixture (data.sources); the other unset."""
    if data is None:
        return {}
    entries = parse_data_argument(data)
    return {"data.dir": data, "data.sources": None} if entries is None else {"data.dir": None, "data.sources": entries}


def sources_value(current: list[dict] | None, subkey: str, value, where: str) -> list[dict] | None:
    """The new `data.sources` after setting `data.sources` (a list of entries, YAML flow text, or the --data text
    NAME=DIR:WEIGHT,...) or one entry's field, `data.sources.NAME.weight` / `data.sources.NAME.dir` (the way to
    change the mix at a resume without repeating the folders)."""
    if not subkey:
        if value is None:
            return None
        entries = value
        if isinstance(value, str):
            text = value.strip()
            entries = yaml.safe_load(text) if text.startswith("[") else parse_data_argument(text)
            if entries is None:
                raise MixtureError(f"{where}: {value!r} is one folder; a mixture is NAME=DIR:WEIGHT,... "
                                   f"(one folder is data.dir)")
        return [asdict(spec) for spec in source_specs(entries, where)]
    name, _, field = subkey.rpartition(".")
    names = [entry["name"] for entry in current or []]
    if field not in ("weight", "dir") or name not in names:
        raise MixtureError(f"{where}: expected data.sources.NAME.weight or data.sources.NAME.dir with NAME one of "
                           f"the configured sources ({', '.join(names) or 'none configured'})")
    entries = [dict(entry, **({field: value} if entry["name"] == name else {})) for entry in current]
    return [asdict(spec) for spec in source_specs(entries, where)]


def check_one_tokenizer(specs: list[SourceSpec], folders: list[ShardFolder]) -> None:
    """All sources must be token ids of one tokenizer (their manifests say which)."""
    first = folders[0].tokenizer_record()
    for spec, folder in zip(specs[1:], folders[1:]):
        mine = folder.tokenizer_record()
        if not same_tokenizer(mine, first) or mine["vocab_size"] != first["vocab_size"]:
            raise ShardError(f"data.sources: {spec.name} ({spec.dir}) is tokenized with {tokenizer_label(mine)!r} "
                             f"(vocab {mine['vocab_size']}) but {specs[0].name} ({specs[0].dir}) with "
                             f"{tokenizer_label(first)!r} (vocab {first['vocab_size']}); a mixture needs one "
                             f"tokenizer: prepare every source with the same `pipeline.prepare --tokenizer`")


class MixtureBatches:
    """(x, y) int64 batches of shape (batch_size, seq_len) for one rank, drawn from several shard folders."""

    def __init__(self, specs: list[SourceSpec], split="train", batch_size=8, seq_len=1024, rank=0, world_size=1,
                 seed=1337, shuffle=True, folders: list[ShardFolder] | None = None, packing: str = "stream",
                 window: int = 1000):
        """`folders`: the sources' shard folders when the caller has opened them already (else opened here);
        `packing`, `window`: data.packing and data.packing_window."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.specs = list(specs)
        self.split, self.batch_size, self.seq_len = split, batch_size, seq_len
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        # One folder's window cutting, checks and errors, reused as is: with shuffle=False, stream item w of
        # epoch 0 is window w in shard order.
        folders = folders or [ShardFolder(spec.dir) for spec in specs]
        self.folders = [TokenBatches(folder, split, batch_size, seq_len, shuffle=False) for folder in folders]
        # bos_aligned: the sampler still counts each source in windows (its epochs and saved state), the rows
        # come from the source's packer; a source's key seeds its document order as it seeds its windows'.
        self.packing, self.window_size = packing, window
        self.packers = None if packing == "stream" else [
            DocumentPacker(split_documents(folder, split), seq_len, window, seed, shuffle, key=source_key(spec.name))
            for spec, folder in zip(specs, folders)]
        self.parked_packers: dict[str, dict] = {}  # cursors of sources an earlier phase had and this one has not
        self.sampler = MixtureSampler([MixtureSource(spec.name, folder.windows_per_epoch, spec.weight)
                                       for spec, folder in zip(specs, self.folders)], seed, shuffle)
        self.samples_consumed = 0
        self.last_sources = np.zeros(0, dtype=np.int64)  # source of each row of the last batch (tests, metrics)

    @property
    def names(self) -> list[str]:
        return self.sampler.names

    def window(self, stream_index: int) -> np.ndarray:
        """The seq_len + 1 tokens of global stream item `stream_index`."""
        return self._rows(stream_index, 1)[1][0]

    def _rows(self, first: int, count: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Source of each of stream items [first, first+count), and its seq_len + 1 tokens."""
        if self.packers is not None:
            sources, positions = self.sampler.items(first, count)
            return sources, [self.packers[s].row(p) for s, p in zip(sources.tolist(), positions.tolist())]
        sources, windows = self.sampler.locate(first, count)
        return sources, [self.folders[s].window(w) for s, w in zip(sources.tolist(), windows.tolist())]

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.samples_consumed + self.rank * self.batch_size
        sources, rows = self._rows(first, self.batch_size)
        rows = np.stack(rows)
        self.last_sources = sources
        self.samples_consumed += self.world_size * self.batch_size
        batch = torch.from_numpy(rows.astype(np.int64))
        return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()

    def reset(self) -> None:
        self.samples_consumed = 0

    def progress(self) -> dict[str, dict]:
        """Per source at the current counter: windows and tokens trained on, epochs reached (fractional)."""
        consumed = self.sampler.consumed(self.samples_consumed)
        figures = {}
        for i, (name, n) in enumerate(zip(self.names, consumed.tolist())):
            # bos_aligned: n counts rows, and the epochs are those of the source's documents
            epochs = self.packers[i].epochs(n) if self.packers else n / int(self.sampler.windows[i])
            figures[name] = {"windows": n, "tokens": n * self.seq_len, "epochs": epochs}
        return figures

    def state_dict(self) -> dict:
        state = {"samples_consumed": self.samples_consumed, "seed": self.seed, "shuffle": self.shuffle,
                 "seq_len": self.seq_len, "split": self.split,
                 "mixture": self.sampler.state_dict(self.samples_consumed)}
        if self.packers is not None:
            consumed = self.sampler.consumed(self.samples_consumed).tolist()
            cursors = {**self.parked_packers, **{name: packer.state_dict(position) for name, packer, position
                                                 in zip(self.names, self.packers, consumed)}}
            state["packing"] = packing_state(self.window_size, sources=cursors)
        return state

    def load_state_dict(self, state: dict) -> bool:
        """Continue a saved mixture; True when the weights or sources changed (a new phase starts here)."""
        where = ", ".join(spec.dir for spec in self.specs)
        if "mixture" not in state:
            raise ShardError(f"{where}: the checkpoint was trained on one shard folder (data.dir), not a mixture; "
                             f"continue it with data.dir, or start the mixture from a fresh run")
        for key in ("seed", "shuffle", "seq_len", "split"):
            if key in state and state[key] != getattr(self, key):
                raise ShardError(f"{where}: loader state has {key}={state[key]!r} but this loader has "
                                 f"{getattr(self, key)!r}; resuming would not continue the same token stream")
        packing = check_packing(state, self.packing, self.window_size, where)
        counter = int(state["samples_consumed"])
        try:
            changed = self.sampler.load_state_dict(state["mixture"], counter)
        except MixtureError as e:
            raise ShardError(f"{where}: {e}") from None
        if packing is not None:  # each source's cursor at its next row; a source new to the mix starts at row 0
            cursors = packing.get("sources", {})
            for name, packer, position in zip(self.names, self.packers, self.sampler.consumed(counter).tolist()):
                if name in cursors:
                    packer.load_state_dict(cursors[name], f"{where}: source {name}", position)
            self.parked_packers = {name: cursor for name, cursor in cursors.items() if name not in self.names}
        self.samples_consumed = counter
        return changed
