"""The training configuration: YAML file -> `--set section.key=value` overrides -> one resolved, checked config.

A config is a handful of small dataclasses (one per concern, like the sections of the YAML file). Every key is
declared here with its type and default, so a misspelt key in a file or on the command line is an error naming
the key, never a silently ignored setting. The resolved config is written to RUN_DIR/config.yaml.

    model:      which GPT (a named size from model.gpt plus optional field overrides)
    data:       where the shards are and how they are cut
    train:      steps, batch size in tokens, ZeRO stage, precision, clipping, seeds
    optim:      AdamW and the learning-rate schedule
    eval:       validation loss and HellaSwag
    checkpoint: how often and how many to keep
    log:        console, TensorBoard, metrics.jsonl and the loss-curve PNG
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from model.gpt import GPTConfig, ModelConfigError
from pipeline.errors import GPTStackError


class ConfigError(GPTStackError):
    """A config file, key or value that cannot be used."""


@dataclass
class ModelSection:
    name: str = "gpt2"  # a size of model.gpt.NAMED_CONFIGS: gpt2, gpt2-medium, gpt2-large, gpt2-xl, tiny, mini, small
    # Optional overrides of that size's fields (null = keep the named size's value).
    block_size: int | None = None
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    dropout: float | None = None
    bias: bool | None = None

    def gpt_config(self, activation_checkpointing: bool = False) -> GPTConfig:
        overrides = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                     if f.name != "name" and getattr(self, f.name) is not None}
        try:
            return GPTConfig.from_name(self.name, activation_checkpointing=activation_checkpointing, **overrides)
        except ModelConfigError as e:
            raise ConfigError(str(e)) from None


@dataclass
class DataSection:
    dir: str | None = None  # shard folder written by `python -m pipeline.prepare` (or --data DIR)
    seq_len: int = 1024  # tokens per training sequence (<= model block_size)
    seed: int = 1337  # shuffling order of the training windows
    shuffle: bool = True
    verify_checksums: bool = True  # rank 0 checks every shard's sha256 against manifest.json before step 1


@dataclass
class TrainSection:
    max_steps: int = 19073  # optimizer steps (19073 x 0.5M tokens = 10B tokens, build-nanogpt's FineWeb-Edu run)
    tokens_per_step: int = 524288  # global batch in tokens; = micro_batch_size x seq_len x world x grad_accum
    micro_batch_size: int = 16  # sequences per rank per forward pass
    zero_stage: int = 1  # DeepSpeed ZeRO: 0 off, 1 optimizer states, 2 + gradients, 3 + parameters sharded
    precision: str = "bf16"  # bf16 | fp16 (dynamic loss scaling) | fp32
    fp16_initial_scale_power: int = 16  # fp16 only: the loss scale starts at 2**this and adapts
    grad_clip: float = 1.0  # clip the global gradient norm to this (0 = off)
    activation_checkpointing: bool = False  # recompute block activations in backward: less memory, ~30% slower
    compile: bool = False  # torch.compile the model (GPU; slow to start on CPU)
    seed: int = 1337  # model initialisation and every rank's RNG (rank r uses seed + r)


@dataclass
class OptimSection:
    lr: float = 6e-4
    min_lr: float = 6e-5  # the schedule ends here
    weight_decay: float = 0.1  # matrices only; biases and LayerNorm gains are not decayed (GPT.param_groups)
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    schedule: str = "cosine"  # cosine (warmup, then cosine to min_lr) | wsd (warmup-stable-decay) | constant
    warmup_steps: int = 715
    decay_fraction: float = 0.2  # wsd only: the last fraction of max_steps decays linearly to min_lr


@dataclass
class EvalSection:
    every: int = 250  # validation loss every N steps (and at the end); 0 = never
    val_batches: int = 20  # micro-batches per rank for one validation loss
    hellaswag: str | None = None  # path of hellaswag_val.jsonl, "download" (needs internet), or null = off
    hellaswag_every: int = 0  # 0 = whenever validation runs
    hellaswag_examples: int | None = None  # evaluate only the first N examples (null = all 10042)


@dataclass
class CheckpointSection:
    every: int = 1000  # save every N steps (and always at the end); 0 = only at the end
    keep_last: int = 3  # older step_* folders are deleted once a newer one is committed


@dataclass
class LogSection:
    every: int = 1  # metrics.jsonl / TensorBoard / console line every N steps
    tensorboard: bool = True
    plot_every: int = 50  # redraw RUN_DIR/loss.png every N steps (and at every evaluation); 0 = only at evaluations


@dataclass
class TrainConfig:
    run_dir: str = "runs/default"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    optim: OptimSection = field(default_factory=OptimSection)
    eval: EvalSection = field(default_factory=EvalSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def gpt_config(self) -> GPTConfig:
        return self.model.gpt_config(self.train.activation_checkpointing)


CHOICES = {
    ("train", "precision"): ("bf16", "fp16", "fp32"),
    ("train", "zero_stage"): (0, 1, 2, 3),
    ("optim", "schedule"): ("cosine", "wsd", "constant"),
}


def _coerce(where: str, value, annotation):
    """Check `value` against a field's type; ints are accepted for floats. Returns the (converted) value."""
    args = typing.get_args(annotation)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if args else annotation
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: null is not allowed (expected {base.__name__})")
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, base) or (base is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: {value!r} is not a{'n' if base is int else ''} {base.__name__}")
    return value


def _section_types(section_cls) -> dict:
    return typing.get_type_hints(section_cls)


def apply_values(config: TrainConfig, values: dict, source: str) -> None:
    """Set nested `values` ({section: {key: value}} or top-level keys) onto config, rejecting unknown keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(values).__name__}")
    top_types = _section_types(TrainConfig)
    for key, value in values.items():
        if key not in top_types:
            raise ConfigError(f"{source}: unknown key {key!r}; known: {', '.join(top_types)}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: section {key!r} must be a mapping")
            for sub_key, sub_value in value.items():
                set_value(config, f"{key}.{sub_key}", sub_value, source)
        else:
            set_value(config, key, value, source)


def set_value(config: TrainConfig, dotted_key: str, value, source: str) -> None:
    parts = dotted_key.split(".")
    top_types = _section_types(TrainConfig)
    if parts[0] not in top_types:
        raise ConfigError(f"{source}: unknown key {dotted_key!r}; known sections: {', '.join(top_types)}")
    if len(parts) == 1:
        if dataclasses.is_dataclass(getattr(config, parts[0])):
            raise ConfigError(f"{source}: {dotted_key!r} is a section; set one of its keys ({dotted_key}.KEY=VALUE)")
        setattr(config, parts[0], _coerce(f"{source}: {dotted_key}", value, top_types[parts[0]]))
        return
    if len(parts) != 2 or not dataclasses.is_dataclass(getattr(config, parts[0])):
        raise ConfigError(f"{source}: unknown key {dotted_key!r}")
    section = getattr(config, parts[0])
    types = _section_types(type(section))
    if parts[1] not in types:
        raise ConfigError(f"{source}: unknown key {dotted_key!r}; {parts[0]} has: {', '.join(types)}")
    checked = _coerce(f"{source}: {dotted_key}", value, types[parts[1]])
    choices = CHOICES.get((parts[0], parts[1]))
    if choices is not None and checked not in choices:
        raise ConfigError(f"{source}: {dotted_key}={checked!r} is not one of {', '.join(map(str, choices))}")
    setattr(section, parts[1], checked)


def parse_override(text: str) -> tuple[str, object]:
    """`optim.lr=3e-4` -> ("optim.lr", 0.0003); the value is read as YAML (numbers, true/false, null, strings)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set optim.lr=3e-4")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads "3e-4" as a string (it wants "3.0e-4"); accept the form everyone types.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            pass
    return key.strip(), value


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> TrainConfig:
    """Defaults, then the YAML file (if any), then each `KEY=VALUE` override in order; then validate()."""
    config = TrainConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(e).split())}") from None
        apply_values(config, _fix_yaml_floats(values), str(path))
    for text in overrides:
        key, value = parse_override(text)
        set_value(config, key, value, f"--set {key}")
    validate(config)
    return config


def _fix_yaml_floats(values):
    """YAML 1.1 (PyYAML) reads 6e-4 as a string; read such strings as the numbers they are."""
    if isinstance(values, dict):
        return {k: _fix_yaml_floats(v) for k, v in values.items()}
    if isinstance(values, str):
        try:
            return float(values) if "e" in values.lower() and not values.isalpha() else values
        except ValueError:
            return values
    return values


def validate(config: TrainConfig) -> None:
    """Checks that need several keys at once (single keys were checked when set)."""
    gpt = config.gpt_config()
    t, o, d = config.train, config.optim, config.data
    positive = {"train.max_steps": t.max_steps, "train.tokens_per_step": t.tokens_per_step,
                "train.micro_batch_size": t.micro_batch_size, "data.seq_len": d.seq_len, "optim.lr": o.lr,
                "log.every": config.log.every, "checkpoint.keep_last": config.checkpoint.keep_last}
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"config: {key}={value} must be > 0")
    for key, value in {"eval.every": config.eval.every, "checkpoint.every": config.checkpoint.every,
                       "optim.warmup_steps": o.warmup_steps, "train.grad_clip": t.grad_clip,
                       "optim.min_lr": o.min_lr, "optim.weight_decay": o.weight_decay}.items():
        if value < 0:
            raise ConfigError(f"config: {key}={value} must be >= 0")
    if d.seq_len > gpt.block_size:
        raise ConfigError(f"config: data.seq_len={d.seq_len} exceeds the model's block_size={gpt.block_size}")
    if o.min_lr > o.lr:
        raise ConfigError(f"config: optim.min_lr={o.min_lr} is larger than optim.lr={o.lr}")
    if not 0.0 <= o.decay_fraction <= 1.0:
        raise ConfigError(f"config: optim.decay_fraction={o.decay_fraction} must be in [0, 1]")
    sequence_tokens = t.micro_batch_size * d.seq_len
    if t.tokens_per_step % sequence_tokens:
        raise ConfigError(f"config: train.tokens_per_step={t.tokens_per_step} is not a multiple of "
                          f"micro_batch_size x seq_len = {sequence_tokens}")


def batch_layout(config: TrainConfig, world_size: int) -> tuple[int, int]:
    """(micro_batch_size, gradient_accumulation_steps) giving exactly tokens_per_step with `world_size` ranks."""
    t = config.train
    per_micro_step = t.micro_batch_size * config.data.seq_len * world_size
    if t.tokens_per_step % per_micro_step:
        raise ConfigError(
            f"config: train.tokens_per_step={t.tokens_per_step} is not divisible by micro_batch_size "
            f"{t.micro_batch_size} x seq_len {config.data.seq_len} x {world_size} rank(s) = {per_micro_step}; "
            f"choose a tokens_per_step that is, or another micro_batch_size")
    return t.micro_batch_size, t.tokens_per_step // per_micro_step


def save_config(config: TrainConfig, run_dir: Path) -> Path:
    """Write RUN_DIR/config.yaml atomically (a temp file beside it, then os.replace)."""
    path = Path(run_dir) / "config.yaml"
    tmp = path.with_name(f".config.yaml.{os.getpid()}.tmp")
    tmp.write_text(config.to_yaml())
    os.replace(tmp, path)
    return path
