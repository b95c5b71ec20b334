"""What the trainer reads: one shard folder (`data.dir`) or a weighted mixture of several (`data.sources`).

`TrainingData` gives the trainer one object for both: the training batches (TokenBatches or MixtureBatches: same
interface), the validation split of every source, the shard checks, the fingerprint a checkpoint records, the
resume of the loader position, and the per-source figures (tokens and epochs so far, validation loss per source)
that metrics.jsonl, TensorBoard and the final summary report. One folder behaves, and checkpoints, exactly as
before mixtures existed.

Validation of a mixture: each source's own val split is evaluated (keys `val_loss.NAME`, and `val_bpb.NAME` when
the trainer computes bits per byte), and the mixture's `val_loss` is their mean weighted by the current mix: the
loss a validation set drawn in the training proportions would have (for bits per byte the weighting is by
tokens, an approximation when the sources' bytes per token differ). A weight-0 source is still evaluated and
reported, but does not count in the mixture's figure.
"""
from __future__ import annotations

import hashlib
from typing import Callable

from gptstack.errors import ShardError
from model.data.batches import TokenBatches
from model.data.mixture_batches import MixtureBatches, check_one_tokenizer, source_specs
from model.data.packing import PackedBatches
from pipeline.shards import ShardFolder


class TrainingData:
    """The training stream and validation splits of one run on one rank."""

    def __init__(self, data_config, micro_batch: int, rank: int, world_size: int, with_validation: bool):
        d = data_config
        self.is_mixture = bool(d.sources)
        # Each shard folder is opened once (its manifest read and checked) and shared by everything below.
        if self.is_mixture:
            self.specs = source_specs(d.sources)
            self.folders = {spec.name: ShardFolder(spec.dir) for spec in self.specs}
            check_one_tokenizer(self.specs, list(self.folders.values()))  # before any batch is cut
            self.train = MixtureBatches(self.specs, "train", micro_batch, d.seq_len, rank, world_size,
                                        seed=d.seed, shuffle=d.shuffle, folders=list(self.folders.values()),
                                        packing=d.packing, window=d.packing_window)
        else:
            self.folders = {None: ShardFolder(d.dir)}
            # bos_aligned: rows packed from whole documents (model/data/packing.py), same interface
            batches = PackedBatches if d.packing == "bos_aligned" else TokenBatches
            self.train = batches(self.folders[None], "train", micro_batch, d.seq_len, rank, world_size,
                                 seed=d.seed, shuffle=d.shuffle, **({"window": d.packing_window}
                                                                    if d.packing == "bos_aligned" else {}))
        self.packing = d.packing
        self.first = next(iter(self.folders.values()))  # whose tokenizer the run uses (a mixture's all agree)
        self.manifest = self.first.manifest
        self.val = {}  # validation reads the stream's windows whatever the packing: val_loss compares across both
        if with_validation:
            self.val = {name: TokenBatches(folder, "val", micro_batch, d.seq_len, rank, world_size, seed=d.seed,
                                           shuffle=False) for name, folder in self.folders.items()}

    def describe(self) -> str:
        """The folder, or the mixture's folders, for messages."""
        if not self.is_mixture:
            return str(self.folders[None])
        return ", ".join(f"{name}={folder}" for name, folder in self.folders.items())

    def verify(self) -> None:
        for folder in self.folders.values():
            folder.verify()

    def fingerprint(self) -> str:
        if not self.is_mixture:
            return self.folders[None].fingerprint()
        joined = ",".join(f"{name}:{folder.fingerprint()}" for name, folder in sorted(self.folders.items()))
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def resume(self, loader_state: dict) -> str | None:
        """Continue the saved loader position; a message when a mixture's weights or sources changed."""
        if not self.is_mixture:
            if "mixture" in loader_state:
                raise ShardError(f"{self.folders[None]}: the checkpoint was trained on a mixture (data.sources "
                                 f"{', '.join(loader_state['mixture']['sources'])}); continue it with data.sources")
            self.train.load_state_dict(loader_state)
            return None
        if not self.train.load_state_dict(loader_state):
            return None
        saved = loader_state["mixture"]["sources"]
        was = ", ".join(f"{name} {s['weight']:.3g}" for name, s in saved.items())
        now = ", ".join(f"{name} {weight:.3g}" for name, weight in self.train.sampler.fractions.items())
        return (f"mixture changed at sample {loader_state['samples_consumed']}: was {was}; now {now} "
                f"(each source continues where it stopped)")

    def weights(self) -> dict[str, float]:
        return dict(self.train.sampler.fractions) if self.is_mixture else {}

    def plan(self, total_tokens: int) -> str | None:
        """Per source: its share of the run's tokens and how many epochs of its training split that is; with
        bos_aligned packing, a line with the fill and cropped share measured on the first rows."""
        packers = {}
        if self.packing == "bos_aligned":
            packers = dict(zip(self.train.names, self.train.packers)) if self.is_mixture else {None: self.train.packer}
        measured = {name: packer.measure() for name, packer in packers.items()}
        lines = []
        if self.is_mixture:
            parts = []
            for name, weight in self.weights().items():
                windows = int(self.train.sampler.windows[self.train.names.index(name)])
                epochs = weight * total_tokens / (windows * self.train.seq_len)
                if name in measured:  # documents read per row: seq_len + 1 tokens and what cropping dropped
                    read = weight * total_tokens * (1 + 1 / self.train.seq_len) / (1 - measured[name]["cropped"])
                    epochs = read / packers[name].documents.tokens
                parts.append(f"{name} {weight:.1%} = {weight * total_tokens:,.0f} tokens = {epochs:.2f} epochs")
            lines.append("mixture over the run: " + "; ".join(parts))
        if measured:
            first = next(iter(packers.values()))
            figures = "; ".join(f"{'' if name is None else name + ' '}first {m['rows']:,} rows: fill "
                                f"{m['fill']:.1%}, cropped {m['cropped']:.1%}" for name, m in measured.items())
            lines.append(f"packing bos_aligned: rows start at a document start (end-of-text id "
                         f"{first.documents.eot} as BOS), best fit among {first.window:,} documents; {figures} "
                         f"(cropped: share of the documents' tokens read but not trained on)")
        return "\n".join(lines) or None

    def progress(self) -> dict:
        """`tokens.NAME` (tokens trained on so far) and `epochs.NAME` per source; empty for one folder."""
        if not self.is_mixture:
            return {}
        record = {}
        for name, figures in self.train.progress().items():
            record[f"tokens.{name}"] = figures["tokens"]
            record[f"epochs.{name}"] = figures["epochs"]
        return record

    def summary(self) -> str | None:
        if not self.is_mixture:
            return None
        return "mixture read: " + "; ".join(f"{name} {figures['tokens']:,} tokens ({figures['epochs']:.2f} epochs)"
                                            for name, figures in self.train.progress().items())

    def validate(self, evaluate: Callable[[TokenBatches], dict]) -> dict:
        """`evaluate(val_batches) -> {"val_loss": ..., ...}` on every source; for a mixture each key per source
        (`val_loss.NAME`) and the weighted mixture under the plain key."""
        if not self.val:
            return {}
        if not self.is_mixture:
            return evaluate(self.val[None])
        per_source = {name: evaluate(batches) for name, batches in self.val.items()}
        weights = self.weights()
        record = {}
        for key in next(iter(per_source.values())):
            record[key] = sum(weights[name] * figures[key] for name, figures in per_source.items() if weights[name])
        for name, figures in per_source.items():
            record.update({f"{key}.{name}": value for key, value in figures.items()})
        return record
