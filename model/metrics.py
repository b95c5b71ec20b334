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
from pathlib import Path

from gptstack.files import atomic_write, open_for_write

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
        self._rewrite()
        self.file = open_for_write(self.path, "a", f"run folder {self.run_dir}")  # a link there is refused
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run logged after the checkpoint we resume from.
            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=resumed_step + 1 if resumed_step else None)
            record_config(self.writer, self.run_dir / "config.yaml", resumed_step)

    def _previous_records(self, resumed_step: int) -> list[dict]:
        """Records of earlier attempts up to the resumed step: a run killed after its last checkpoint logged
        steps that will now be trained again, and they must not appear twice."""
        if not self.path.is_file() or resumed_step == 0:
            return []
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if record.get("step", 0) <= resumed_step:
                kept.append(record)
        return kept

    def _rewrite(self) -> None:
        atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        record = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        self.records.append(record)
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(tensorboard_tag(key), value, record["step"])
        if "val_loss" in record or (self.plot_every and record["step"] % self.plot_every == 0):
            self.plot()

    def plot(self) -> None:
        """Redraw RUN_DIR/loss.png: training loss per step and validation loss per evaluation."""
        if not self.enabled or not self.records:
            return
        import matplotlib
        matplotlib.use("Agg")  # no display on cluster nodes
        import matplotlib.pyplot as plt

        train = [(r["step"], r["loss"]) for r in self.records if r.get("loss") is not None]
        val = [(r["step"], r["val_loss"]) for r in self.records if r.get("val_loss") is not None]
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        if train:
            ax.plot(*zip(*train), label="train loss", linewidth=1)
        if val:
            ax.plot(*zip(*val), "o-", label="val loss")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.set_title(self.run_dir.name)
        ax.grid(alpha=0.3)
        bpb = [(r["step"], r["val_bpb"]) for r in self.records if r.get("val_bpb") is not None]
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
        atomic_write(self.run_dir / "loss.png", lambda temp: fig.savefig(temp, format="png"))
        plt.close(fig)

    def close(self) -> None:
        if not self.enabled:
            return
        self.plot()
        self.file.close()
        if self.writer is not None:
            self.writer.close()
