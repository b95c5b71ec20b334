"""The fine-tuning config: the training config (model/config.py) plus an `sft` section, read by the same YAML /
--set mechanism. The model section is not the user's to choose: it is the base checkpoint's (resolve_sft_config
writes it in before any --set), with the vocabulary grown to hold the chat markers where they lie past it (GPT-2).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from model.config import ConfigError, TrainConfig, load_config

SFT_CHOICES = {"format": ("auto", "messages", "alpaca"), "packing": ("pack", "pad"), "too_long": ("error", "skip")}
LORA_TARGETS = ("attention", "mlp")


@dataclass
class SFTSection:
    base: str | None = None  # the pretrained run folder, checkpoint step_N or weights folder (or --base)
    data: str | None = None  # conversations: a .jsonl file, or hf:NAME[:CONFIG]:SPLIT streamed from the Hub (--data)
    val_data: str | None = None  # held-out conversations (same forms); null = the last val_fraction of `data`
    val_fraction: float = 0.05
    format: str = "auto"  # messages ({"messages": [...]}), alpaca (instruction/input/output), auto = per line
    limit: int | None = None  # read at most this many conversations (a Hub set needs it: it is streamed)
    # pack: whole conversations laid end to end in each row of seq_len+1 tokens (never split), the rest padded;
    # pad: one conversation per row. Measured in bench/bench_sft.py (docs/chat.md): pack is the default
    packing: str = "pack"
    too_long: str = "error"  # a conversation over seq_len+1 tokens: error (one line, file:line) or skip (counted)
    lora_rank: int = 0  # 0 = full fine-tuning; r > 0 = LoRA adapters of rank r, the base frozen (model/chat/lora.py)
    lora_alpha: float = 16.0  # the adapters' update is scaled by alpha / rank
    lora_targets: str = "attention,mlp"  # which matrices get adapters: attention, mlp or both


@dataclass
class SFTConfig(TrainConfig):
    run_dir: str = "runs/sft"
    sft: SFTSection = field(default_factory=SFTSection)


def check_sft(config: SFTConfig) -> None:
    s = config.sft
    for key, choices in SFT_CHOICES.items():
        if getattr(s, key) not in choices:
            raise ConfigError(f"config: sft.{key}={getattr(s, key)!r} is not one of {', '.join(choices)}")
    if not 0 <= s.val_fraction < 1:
        raise ConfigError(f"config: sft.val_fraction={s.val_fraction} must be in [0, 1)")
    if s.limit is not None and s.limit < 1:
        raise ConfigError(f"config: sft.limit={s.limit} must be >= 1 (or null: all)")
    if not 0 <= s.lora_rank <= 4096:
        raise ConfigError(f"config: sft.lora_rank={s.lora_rank} must be from 0 (off) to 4096")
    if not 0 < s.lora_alpha < 1e6:
        raise ConfigError(f"config: sft.lora_alpha={s.lora_alpha} must be > 0")
    targets = lora_targets(s)
    if s.lora_rank and (not targets or any(t not in LORA_TARGETS for t in targets)):
        raise ConfigError(f"config: sft.lora_targets={s.lora_targets!r}: a comma list of {', '.join(LORA_TARGETS)}")
    if s.lora_rank and config.train.zero_stage == 3:
        raise ConfigError("config: sft.lora_rank needs train.zero_stage 0, 1 or 2 (ZeRO-3 splits the adapters)")
    if s.lora_rank and config.optim.name != "adamw":
        raise ConfigError("config: sft.lora_rank needs optim.name=adamw (Muon orthogonalises whole matrices)")
    if not s.base:
        raise ConfigError("no base model: give --base RUN_OR_CHECKPOINT (a pretrained run, checkpoint or weights)")
    if not s.data:
        raise ConfigError("no conversations: give --data FILE.jsonl (or hf:NAME[:CONFIG]:SPLIT)")


def lora_targets(section: SFTSection) -> list[str]:
    return [t.strip() for t in section.lora_targets.split(",") if t.strip()]


def resolve_sft_config(path, overrides, values: dict, base_model) -> SFTConfig:
    """load_config twice: once to find sft.base, then with the base's model fields (`base_model(path)` -> dict of
    model.KEY values) under the file and the --set overrides: a --set model.dropout=0.1 still applies."""
    first = load_config(path, overrides, values, config_class=SFTConfig)
    if not first.sft.base:
        check_sft(first)
    model_values = base_model(Path(first.sft.base))
    config = load_config(path, overrides, values, base=model_values, config_class=SFTConfig)
    check_sft(config)
    return config


def model_values(gpt_config) -> dict:
    """The model section that builds exactly `gpt_config`."""
    values = {f"model.{k}": v for k, v in dataclasses.asdict(gpt_config).items() if k != "activation_checkpointing"}
    values["model.name"] = "qwen3-tiny" if gpt_config.arch == "qwen3" else "tiny"  # every field is set below it
    return values
