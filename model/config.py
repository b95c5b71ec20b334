"""The training configuration: YAML file -> `--set section.key=value` -> command-line flags -> one checked config.

A config is a handful of small dataclasses (one per concern, like the sections of the YAML file). Every key is
declared here with its type and default, so a misspelt key in a file or on the command line is an error naming
the key, never a silently ignored setting. Values are read by the type their key declares, wherever they are
written (see _TextLoader). The resolved config is written to RUN_DIR/config.yaml; `python -m model.train
--print-config` shows it with the model and batch it gives (describe()).

    model:      which GPT: a named size from model.gpt, plus any GPTConfig field
    data:       where the shards are and how they are cut
    train:      steps, batch size in tokens, ZeRO stage, precision, clipping, seeds
    optim:      AdamW and the learning-rate schedule
    eval:       validation loss and HellaSwag
    checkpoint: how often and how many to keep
    log:        console, TensorBoard, metrics.jsonl and the loss-curve PNG
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import yaml

import configs
from gptstack.errors import GPTStackError
from gptstack.files import atomic_write
from gptstack.formats import MAX_SEED, short
from model.build import describe_shape
from model.data.mixture_batches import sources_value
from model.gpt import GPTConfig, ModelConfigError


class ConfigError(GPTStackError):
    """A config file, key or value that cannot be used."""


# The model section: `name`, a size of model.gpt.NAMED_CONFIGS (gpt2, gpt2-medium, gpt2-large, gpt2-xl, tiny, mini,
# small; qwen3-tiny, -mini, -small, -125m, -350m, -1b), then any GPTConfig field to change (null = the named size's
# value; `arch` picks the family, model/build.py). Its keys are read from GPTConfig, so a field added to the model
# can be set here as soon as it exists. activation_checkpointing is the one exception: it
# changes how a step is computed, not the model, and is set as train.activation_checkpointing.
_GPT_FIELD_TYPES = typing.get_type_hints(GPTConfig)
ModelSection = dataclasses.make_dataclass("ModelSection", [("name", str, field(default="gpt2"))] + [
    (f.name, _GPT_FIELD_TYPES[f.name] | None, field(default=None))
    for f in dataclasses.fields(GPTConfig) if f.name != "activation_checkpointing"])


@dataclass
class DataSection:
    dir: str | None = None  # shard folder written by `python -m pipeline.prepare` (or --data DIR)
    # or a mixture of folders instead: [{dir, weight, name}] (name defaults to the folder's; or --data
    # NAME=DIR:WEIGHT,...); setting one of dir/sources clears the other; change one weight with
    # --set data.sources.NAME.weight=W (docs/training.md, "Training on a mixture")
    sources: list | None = None
    seq_len: int = 1024  # tokens per training sequence (<= model block_size)
    seed: int = 1337  # shuffling order of the training windows
    shuffle: bool = True
    # stream: windows cut from the one token stream, wherever documents start (GPT-2, llm.c) | bos_aligned: every
    # row starts at a document start, rows filled best-fit from a window of documents and cropped where nothing
    # fits (nanochat); see model/data/
    packing: str = "stream"
    packing_window: int = 1000  # bos_aligned only: documents held to choose the best fit from
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
    # adamw: AdamW for every parameter | muon: Muon (momentum + Newton-Schulz orthogonalisation) for the hidden
    # matrices, AdamW for embeddings, head, norms and biases (nanochat, modded-nanogpt); ZeRO 0 only; model/muon.py
    name: str = "adamw"
    lr: float = 6e-4  # AdamW's rate (with muon: the rate of the parameters AdamW keeps)
    min_lr: float = 6e-5  # the schedule ends here
    weight_decay: float = 0.1  # matrices only; biases and LayerNorm gains are not decayed (GPT.param_groups)
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    schedule: str = "cosine"  # cosine (warmup, then cosine to min_lr) | wsd (warmup-stable-decay) | constant
    warmup_steps: int = 715
    decay_fraction: float = 0.2  # wsd only: the last fraction of max_steps decays linearly to min_lr
    muon_lr: float = 0.02  # muon only: the matrices' rate, on the same schedule as lr (modded-nanogpt: 0.05, nanochat: 0.02)
    muon_momentum: float = 0.95  # muon only: Nesterov momentum of the matrices' updates


@dataclass
class EvalSection:
    every: int = 250  # validation loss every N steps (and at the end); 0 = never
    val_batches: int = 20  # micro-batches per rank for one validation loss
    hellaswag: str | None = None  # path of hellaswag_val.jsonl, "download" (needs internet), or null = off
    hellaswag_every: int = 0  # 0 = whenever validation runs
    hellaswag_examples: int | None = None  # evaluate only the first N examples (null = all 10042)
    # The offline task suite (docs/evaluation.md): "quick", "core" or task names, logged as eval/<task> and
    # eval/<suite>_centered; null = off. It replaces the HellaSwag number above (its hellaswag is lm-eval's).
    suite: str | None = None
    suite_every: int = 0  # 0 = whenever validation runs (and at the end)
    suite_limit: int | None = 100  # the first N examples of each task (null = all)
    suite_shots: int = 0  # few-shot examples per question (0: short rows, cheap)
    suite_batch_size: int = 32  # rows (one per choice) per forward pass


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
        """The model to build: the named size, with the model section's fields that are set."""
        fields = {key: value for key, value in dataclasses.asdict(self.model).items()
                  if key != "name" and value is not None}
        try:
            return GPTConfig.from_name(self.model.name, activation_checkpointing=self.train.activation_checkpointing,
                                       **fields)
        except ModelConfigError as e:
            raise ConfigError(str(e)) from None


CHOICES = {
    ("train", "precision"): ("bf16", "fp16", "fp32"),
    ("train", "zero_stage"): (0, 1, 2, 3),
    ("optim", "schedule"): ("cosine", "wsd", "constant"),
    ("optim", "name"): ("adamw", "muon"),
    ("data", "packing"): ("stream", "bos_aligned"),
}


class _TextLoader(yaml.SafeLoader):
    """YAML whose scalars all stay text, except null: the type each key declares reads its value (_coerce).

    PyYAML follows YAML 1.1, where 3e-4 is a string but 3.0e-4 a float, and a folder named 1e3 or 0123 would not
    survive as text. Reading by the key's type is one rule for a config file and for --set: every float form is a
    float where a float is declared, and a path is the text that was written.
    """


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers
            if tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_NULL_TEXT = ("null", "Null", "NULL", "~")
_BOOL_TEXT = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}  # YAML's spellings


def _coerce(where: str, value, annotation):
    """`value` as the type the key declares: text is read by that type, typed values are checked (ints are
    accepted for floats). Returns the converted value."""
    args = typing.get_args(annotation)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if args else annotation
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: null is not allowed (expected {base.__name__})")
    if isinstance(value, str) and base is not str:
        try:
            value = _BOOL_TEXT[value.lower()] if base is bool else base(value)
        except (KeyError, ValueError):
            pass  # refused below, naming the text
    elif base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, base) or (base is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: {value!r} is not a{'n' if base is int else ''} {base.__name__}")
    return value


def _section_types(section_cls) -> dict:
    return typing.get_type_hints(section_cls)


def apply_values(config: TrainConfig, values: dict, source: str) -> None:
    """Set nested `values` ({section: {key: value}} or top-level keys) onto config, rejecting unknown keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(values).__name__}")
    top_types = _section_types(type(config))  # TrainConfig or a subclass (SFTConfig)
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
    top_types = _section_types(type(config))  # TrainConfig or a subclass (SFTConfig)
    if parts[0] not in top_types:
        raise ConfigError(f"{source}: unknown key {dotted_key!r}; known sections: {', '.join(top_types)}")
    if len(parts) == 1:
        if dataclasses.is_dataclass(getattr(config, parts[0])):
            raise ConfigError(f"{source}: {dotted_key!r} is a section; set one of its keys ({dotted_key}.KEY=VALUE)")
        setattr(config, parts[0], _coerce(f"{source}: {dotted_key}", value, top_types[parts[0]]))
        return
    if parts[:2] == ["data", "sources"]:  # a list of entries, or one entry's field: model/data/mixture_batches.py
        config.data.sources = sources_value(config.data.sources, ".".join(parts[2:]), value, f"{source}")
        if config.data.sources:
            config.data.dir = None  # one folder or a mixture: the one set last wins, as --data does
        return
    if dotted_key == "data.dir" and value is not None:
        config.data.sources = None
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


def parse_override(text: str) -> tuple[str, str | None]:
    """`optim.lr=3e-4` -> ("optim.lr", "3e-4"), `eval.hellaswag=null` -> ("eval.hellaswag", None). The text is
    read by the key's type when it is set, exactly as a value in a config file is."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set optim.lr=3e-4")
    key, raw = text.split("=", 1)
    return key.strip(), None if raw.strip() in _NULL_TEXT else raw


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = (),
                values: Mapping[str, object] | None = None,
                base: Mapping[str, object] | None = None, config_class: type = TrainConfig) -> TrainConfig:
    """Defaults, then the YAML file (if any), then `base`, then each `--set KEY=VALUE` in order, then `values`
    (dotted key -> typed value: the command line's own flags; `base` holds --data's, which a --set such as
    data.sources.NAME.weight=W edits, so they must be in place before it); then validate()."""
    config = config_class()  # model/sft_config.py's SFTConfig adds its sft section
    if path is not None:
        # A file as given, else a packaged config by name (`tiny-cpu`, `configs/tiny-cpu.yaml`): works after pip install.
        found = configs.find(str(path))
        if found is None:
            raise ConfigError(f"config file {path} does not exist (built-in configs: {', '.join(configs.names(''))})")
        path = found
        try:
            from_file = yaml.load(path.read_text(), Loader=_TextLoader) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(e).split())}") from None
        apply_values(config, from_file, str(path))
    for key, value in (base or {}).items():
        set_value(config, key, value, key)
    for text in overrides:
        key, value = parse_override(text)
        set_value(config, key, value, f"--set {key}")
    for key, value in (values or {}).items():
        set_value(config, key, value, key)
    validate(config)
    return config


# Every number of the config and the values it may take, checked in one place (validate). A float is also always
# finite (nan and inf are refused wherever they are written); an int not listed is 0..MAX_COUNT, so that no step,
# token or sample count overflows the int64 that numpy and torch keep it in.
MAX_COUNT = 10**12
FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max
RANGES = {
    "train.max_steps": (lambda v: 1 <= v <= MAX_COUNT, f"from 1 to {MAX_COUNT:,}"),
    "train.tokens_per_step": (lambda v: 1 <= v <= MAX_COUNT, f"from 1 to {MAX_COUNT:,}"),
    "train.micro_batch_size": (lambda v: 1 <= v <= 2**20, f"from 1 to {2**20:,}"),
    "train.fp16_initial_scale_power": (lambda v: 0 <= v <= 64, "from 0 to 64"),
    "train.grad_clip": (lambda v: v >= 0, ">= 0 (0 = off)"),
    "train.seed": (lambda v: 0 <= v <= MAX_SEED, "from 0 to 2**63-1 (what numpy and torch both accept)"),
    "data.seed": (lambda v: 0 <= v <= MAX_SEED, "from 0 to 2**63-1 (what numpy and torch both accept)"),
    "data.seq_len": (lambda v: 1 <= v <= 2**24, f"from 1 to {2**24:,}"),
    # The optimizer computes in float32: a rate beyond its largest value (1e40) is inf there. Large finite rates
    # stay allowed: they diverge, and the run stops on the first non-finite loss (a tested fault).
    "optim.lr": (lambda v: 0 < v <= FLOAT32_MAX, "> 0 and finite in float32 (at most 3.4e+38)"),
    "optim.min_lr": (lambda v: 0 <= v <= FLOAT32_MAX, ">= 0 and finite in float32 (at most 3.4e+38)"),
    "optim.weight_decay": (lambda v: v >= 0, ">= 0"),
    "optim.beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "optim.beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "optim.eps": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "optim.decay_fraction": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "optim.muon_lr": (lambda v: 0 < v <= FLOAT32_MAX, "> 0 and finite in float32 (at most 3.4e+38)"),
    "optim.muon_momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "data.packing_window": (lambda v: 1 <= v <= 2**20, f"from 1 to {2**20:,}"),
    "eval.val_batches": (lambda v: 1 <= v <= 2**20, f"from 1 to {2**20:,}"),
    "eval.hellaswag_examples": (lambda v: 1 <= v <= MAX_COUNT, f"from 1 to {MAX_COUNT:,} (or null: all)"),
    "eval.suite_limit": (lambda v: 1 <= v <= MAX_COUNT, f"from 1 to {MAX_COUNT:,} (or null: all)"),
    "eval.suite_shots": (lambda v: 0 <= v <= 25, "from 0 to 25"),
    "eval.suite_batch_size": (lambda v: 1 <= v <= 4096, "from 1 to 4,096"),
    "checkpoint.keep_last": (lambda v: 1 <= v <= 2**20, f"from 1 to {2**20:,}"),
    "log.every": (lambda v: 1 <= v <= MAX_COUNT, f"from 1 to {MAX_COUNT:,}"),
}
_ANY_COUNT = (lambda v: 0 <= v <= MAX_COUNT, f"from 0 to {MAX_COUNT:,}")


def check_ranges(config: TrainConfig) -> None:
    """Every int and float of every section (the model's are GPTConfig's) within its range; one line naming the key."""
    for section_name in ("train", "data", "optim", "eval", "checkpoint", "log"):
        section = getattr(config, section_name)
        for item in dataclasses.fields(section):
            key, value = f"{section_name}.{item.name}", getattr(section, item.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"config: {key}={value} must be a finite number")
            accept, allowed = RANGES.get(key, _ANY_COUNT if isinstance(value, int) else (lambda v: True, ""))
            if not accept(value):
                raise ConfigError(f"config: {key}={short(value)} must be {allowed}")


def validate(config: TrainConfig) -> None:
    """Every value's range (check_ranges), then the checks that need several keys at once."""
    gpt = config.gpt_config()
    check_ranges(config)
    t, o, d = config.train, config.optim, config.data
    if d.seq_len > gpt.block_size:
        raise ConfigError(f"config: data.seq_len={d.seq_len} exceeds the model's block_size={gpt.block_size}")
    if o.min_lr > o.lr:
        raise ConfigError(f"config: optim.min_lr={o.min_lr} is larger than optim.lr={o.lr}")
    if o.name == "muon" and t.zero_stage != 0:  # why: docs/training.md, "Muon"
        raise ConfigError(f"config: optim.name=muon needs train.zero_stage=0, not {t.zero_stage}: ZeRO 1-3 flatten "
                          f"the matrices into 1-D shards that Muon cannot orthogonalise")
    if t.tokens_per_step % d.seq_len:  # whole sequences; how ranks share them is batch_layout's, per world size
        raise ConfigError(f"config: train.tokens_per_step={t.tokens_per_step} is not a multiple of "
                          f"seq_len = {d.seq_len}")


def batch_layout(config: TrainConfig, world_size: int) -> tuple[int, int]:
    """(micro_batch_size, gradient_accumulation_steps) giving exactly tokens_per_step with `world_size` ranks.

    train.micro_batch_size is the most sequences that fit on one device: when the ranks would together take more
    than a step holds, or a number that does not divide it, the largest micro-batch below it that does is used,
    with more accumulation. The tokens per step stay the same, and so does the data order (each step takes the
    next tokens_per_step / seq_len windows of the one global stream, whatever the layout). Refused only when the
    step's sequences cannot be shared evenly by the ranks."""
    t = config.train
    seq_len = config.data.seq_len
    sequences, rest = divmod(t.tokens_per_step, seq_len)
    if rest or sequences % world_size:
        raise ConfigError(
            f"config: train.tokens_per_step={t.tokens_per_step} is not divisible by seq_len {seq_len} x "
            f"{world_size} rank(s) = {seq_len * world_size}: the ranks cannot share a step's sequences evenly; "
            f"choose a tokens_per_step that is a multiple of it, or another number of ranks")
    per_rank = sequences // world_size
    micro_batch = max(d for d in range(1, min(t.micro_batch_size, per_rank) + 1) if per_rank % d == 0)
    return micro_batch, per_rank // micro_batch


def batch_summary(config: TrainConfig, world_size: int) -> str:
    """How one optimizer step's tokens are made up on `world_size` ranks."""
    micro_batch, grad_accum = batch_layout(config, world_size)
    lowered = (f" (micro_batch_size {config.train.micro_batch_size} lowered to {micro_batch} to fit the step)"
               if micro_batch < config.train.micro_batch_size else "")
    return (f"{config.train.tokens_per_step:,} tokens/step = {micro_batch} seq x {config.data.seq_len} tokens x "
            f"{world_size} rank(s) x {grad_accum} accumulation{lowered}")


def describe(config: TrainConfig, world_size: int) -> str:
    """The resolved config as YAML, then the model and batch it gives as comments (so the text is still a
    config file that can be saved and used)."""
    first, *rest = describe_shape(config.gpt_config())  # the family's own words (model/build.py)
    shape = [f"model {config.model.name}: {first}", *rest, f"batch: {batch_summary(config, world_size)}"]
    return config.to_yaml() + "".join(f"# {line}\n" for line in shape)


def save_config(config: TrainConfig, run_dir: Path) -> Path:
    """Write RUN_DIR/config.yaml atomically."""
    path = Path(run_dir) / "config.yaml"
    atomic_write(path, config.to_yaml())
    return path
