"""Training metrics: console progress bar, RUN_DIR/metrics.jsonl, TensorBoard, and a loss-curve PNG.

Only rank 0 writes; the values it writes are already averaged over all ranks by the trainer.
metrics.jsonl holds one JSON object per logged optimizer step ({"step", "loss", "lr", "grad_norm",
"tokens_per_s", "mfu", ...}) and one per evaluation ({"step", "val_loss", "val_bpb"[, "hellaswag_acc_token_norm"]}).
In TensorBoard the evaluation metrics are under `eval/` (eval/val_loss, eval/hellaswag_acc_token_norm, ...), the
others under `train/`; the run's resolved config.yaml is recorded as the text `config` and as hparams.
"""
from __future__ import annotations

import json
import math
import sys
import threading
from pathlib import Path

from gptstack.errors import GPTStackError
from gptstack.files import atomic_write, bounded_lines, open_for_write

# Dense bf16 tensor-core peak of one GPU, in FLOP/s, from the vendors' data sheets (without sparsity).
# Matched against torch.cuda.get_device_name() in order: the first key contained in the lower-cased name wins,
# so specific variants come before the family name.
PEAK_BF16_FLOPS = [
    ("gh200", 989e12),
    ("h200", 989e12),
    ("h100 pcie", 756e12),
    ("h100 nvl", 835e12),
    ("h100", 989e12),  # SXM
    ("h800", 989e12),
    ("b200", 2250e12),
    ("b100", 1750e12),
    ("a100", 312e12),
    ("a800", 312e12),
    ("l40s", 362e12),
    ("l40", 181e12),
    ("a6000", 155e12),  # RTX A6000 (with fp32 accumulation: half)
    ("a40", 150e12),
    ("a10g", 70e12),
    ("a10", 125e12),
    ("l4", 121e12),
    ("4090", 165e12),
    ("3090", 71e12),
    ("mi300x", 1307e12),
    ("mi250x", 383e12),
    ("mi250", 362e12),
]


def peak_flops(device_name: str | None) -> float | None:
    """bf16 peak FLOP/s of one device of this name, or None (CPU, unknown GPU): MFU is then "n/a"."""
    if not device_name:
        return None
    name = device_name.lower()
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops
    return None


def accelerator_name() -> str | None:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return None


def mfu(flops_per_token: float, tokens_per_s: float, world_size: int, device_name: str | None) -> float | None:
    """Model FLOPs utilisation: achieved training FLOP/s over the peak of all devices (PaLM, appendix B)."""
    peak = peak_flops(device_name)
    if peak is None:
        return None
    return flops_per_token * tokens_per_s / (peak * world_size)


EVAL_PREFIXES = ("val_", "hellaswag")  # the keys an evaluation record adds (model/train.py Trainer.evaluate)


def tensorboard_tag(key: str) -> str:
    """`eval/val_loss`, `eval/hellaswag_acc_token_norm`: every evaluation under one prefix, whatever its name;
    `train/loss`, `train/lr`, ... for the rest."""
    if key.startswith("eval/"):  # the task suite's keys (model/eval/in_loop.py) carry their prefix
        return key
    return f"eval/{key}" if key.startswith(EVAL_PREFIXES) else f"train/{key}"


def flat_config(values: dict, prefix: str = "") -> dict:
    """{"optim": {"lr": 3e-3}} -> {"optim.lr": 3e-3}; values TensorBoard's hparams take (numbers, text, bools)."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def record_config(writer, config_file: Path, step: int) -> None:
    """The resolved config in TensorBoard: as text (the YAML as written) and as hparams, so runs can be compared
    by their settings in the HPARAMS tab. Skipped when the run folder has no config.yaml."""
    import yaml
    from torch.utils.tensorboard.summary import hparams

    if not config_file.is_file():
        return
    text = config_file.read_text()
    writer.add_text("config", "```yaml\n" + text + "\n```", step)  # markdown: keep the YAML's layout
    # hparams() writes the experiment summary; the metric names only say which scalars the HPARAMS tab shows.
    for summary in hparams(flat_config(yaml.safe_load(text) or {}), {"eval/val_loss": 0.0, "eval/val_bpb": 0.0}):
        writer.file_writer.add_summary(summary, step)


class MetricsLogger:
    """Writes metrics on rank 0; a no-op elsewhere."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, plot_every: int, resumed_step: int):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.plot_every = plot_every
        self.path = self.run_dir / "metrics.jsonl"
        self.writer = None
        self.records: list[dict] = []
        if not enabled:
            return
        self.records = self._previous_records(resumed_step)
        self.failing: set[str] = set()  # what could not be written (a full disk): said once, retried at each log
        self.unwritten = False  # metrics.jsonl misses records: rewritten whole from self.records at the next log
        try:
            self._rewrite()
            self.file = open_for_write(self.path, "a", f"run folder {self.run_dir}")  # a link there is refused
            if tensorboard:
                _quiet_tensorboard_thread()
                self.writer = self._new_writer(resumed_step)
                record_config(self.writer, self.run_dir / "config.yaml", resumed_step)
        except OSError as e:  # before the first step: nothing is lost by stopping here
            raise GPTStackError(f"cannot write the metrics in {self.run_dir}: {e.strerror or e}") from None

    def _new_writer(self, resumed_step: int):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a killed run logged after the checkpoint we resume from.
        return SummaryWriter(str(self.run_dir / "tb"), purge_step=resumed_step + 1 if resumed_step else None)

    def _failed(self, what: str, error: OSError) -> None:
        """Say once that `what` could not be written (a full disk between checkpoints); training goes on, and
        the next checkpoint save, which needs far more room, stops the run with its own line if the disk stays full."""
        if what not in self.failing:
            self.failing.add(what)
            print(f"warning: cannot write {what} ({error.strerror or error}); training goes on and it is written "
                  f"again at the next log", file=sys.stderr, flush=True)

    def _recovered(self, what: str) -> None:
        if what in self.failing:
            self.failing.discard(what)
            print(f"{what} written again", file=sys.stderr, flush=True)

    def _previous_records(self, resumed_step: int) -> list[dict]:
        """Records of earlier attempts up to the resumed step: a run killed after its last checkpoint logged
        steps that will now be trained again, and they must not appear twice."""
        if not self.path.is_file() or resumed_step == 0:
            return []
        kept = []
        with open(self.path, "rb") as file:
            for line in bounded_lines(file, 2**20):  # a record is a few hundred bytes; a longer line is not one
                try:
                    record = json.loads(line) if line is not None else None
                except (ValueError, RecursionError):  # a line cut short by a kill, or not ours
                    continue
                step = record.get("step") if isinstance(record, dict) else None
                if isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= resumed_step:
                    kept.append(record)
        return kept

    def _rewrite(self) -> None:
        atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        record = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        self.records.append(record)
        self._append(record)
        self._tensorboard(record)
        if "val_loss" in record or (self.plot_every and record["step"] % self.plot_every == 0):
            self.plot()

    def _append(self, record: dict) -> None:
        """One more line of metrics.jsonl. After a failed write the file may end in half a line, so it is then
        rewritten whole (atomically, from memory) instead: no record is lost or written twice."""
        try:
            if self.unwritten:
                try:
                    self.file.close()
                except OSError:  # its buffer could not be flushed either: the rewrite holds those records
                    pass
                self._rewrite()
                self.file = open_for_write(self.path, "a", f"run folder {self.run_dir}")
                self.unwritten = False
                self._recovered(str(self.path))
            else:
                self.file.write(json.dumps(record) + "\n")
                self.file.flush()
        except OSError as e:
            self.unwritten = True
            self._failed(str(self.path), e)

    def _tensorboard(self, record: dict) -> None:
        """TensorBoard's writer stays broken after a failed write: it is replaced by a new one (a new event file
        in the same folder) at the next log; the records between are in metrics.jsonl."""
        what = str(self.run_dir / "tb")
        try:
            if self.writer is None and what in self.failing:
                self.writer = self._new_writer(0)
                self._recovered(what)
            if self.writer is not None:
                for key, value in record.items():
                    if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                        self.writer.add_scalar(tensorboard_tag(key), value, record["step"])
        except OSError as e:
            broken, self.writer = self.writer, None
            if broken is not None:
                try:
                    broken.close()
                except OSError:
                    pass
            self._failed(what, e)

    def plot(self) -> None:
        """Redraw RUN_DIR/loss.png: training loss per step and validation loss per evaluation."""
        if not self.enabled or not self.records:
            return
        import matplotlib
        matplotlib.use("Agg")  # no display on cluster nodes
        import matplotlib.pyplot as plt

        train, val, bpb = (_series(self.records, key) for key in ("loss", "val_loss", "val_bpb"))
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        if train:
            ax.plot(*zip(*train), label="train loss", linewidth=1)
        if val:
            ax.plot(*zip(*val), "o-", label="val loss")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.set_title(self.run_dir.name)
        ax.grid(alpha=0.3)
        if bpb:  # bits per byte: the one scale on which runs with different tokenizers compare
            right = ax.twinx()
            right.plot(*zip(*bpb), "s--", color="tab:green", label="val bits/byte")
            right.set_ylabel("validation bits per byte")
            handles, labels = ax.get_legend_handles_labels()
            more, more_labels = right.get_legend_handles_labels()
            ax.legend(handles + more, labels + more_labels)
        else:
            ax.legend()
        fig.tight_layout()
        path = self.run_dir / "loss.png"
        try:
            atomic_write(path, lambda temp: fig.savefig(temp, format="png"))  # the old picture stays on failure
            self._recovered(str(path))
        except OSError as e:
            self._failed(str(path), e)
        finally:
            plt.close(fig)

    def close(self) -> None:
        if not self.enabled:
            return
        self.plot()
        if self.unwritten:
            self._append({})  # one last try at the full rewrite (the record itself is not used)
        for closing in (self.file, self.writer):
            try:
                if closing is not None:
                    closing.close()
            except OSError as e:
                self._failed(str(self.path) if closing is self.file else str(self.run_dir / "tb"), e)


def _series(records: list[dict], key: str) -> list[tuple]:
    """(step, value) of the records holding a number under `key` (records read back at a resume may hold anything)."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    return [(r["step"], r[key]) for r in records if number(r.get(key)) and number(r.get("step"))]


def _quiet_tensorboard_thread() -> None:
    """TensorBoard writes from a thread of its own, and a write that fails there (a full disk) prints a traceback
    before the next add_scalar raises it where MetricsLogger reports it in one line: keep only that line."""
    previous = threading.excepthook
    if getattr(previous, "quiets_tensorboard", False):
        return

    def hook(args):
        if not (issubclass(args.exc_type, OSError) and "AsyncWriter" in type(args.thread).__name__):
            previous(args)

    hook.quiets_tensorboard = True
    threading.excepthook = hook
