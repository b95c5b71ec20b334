"""The training config: shipped configs, one rule for reading values wherever they are written (a YAML file,
--set, the command line's flags), the model section as a named size plus any GPTConfig field, and --print-config."""
import dataclasses

import pytest

from model.config import ConfigError, ModelSection, batch_layout, load_config
from model.gpt import GPTConfig
from model.sft_config import SFTConfig
from model.train import main, parse_args, resolve_config
from tests.support import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"


def load_shipped(name: str, overrides=()):
    """A shipped config: fine-tuning's (sft-*.yaml) hold an sft section, read by model.sft's SFTConfig."""
    return load_config(CONFIGS / name, overrides, **({"config_class": SFTConfig} if name.startswith("sft") else {}))


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_loads(name):
    config = load_shipped(name, ["data.dir=somewhere"])
    assert config.data.seq_len <= config.gpt_config().block_size


def test_gpt2_124m_is_half_a_million_tokens_on_eight_gpus():
    config = load_config(CONFIGS / "gpt2-124m.yaml")
    assert config.train.tokens_per_step == 2**19
    assert batch_layout(config, 8) == (64, 1)
    assert batch_layout(config, 2) == (64, 4)  # fewer GPUs: same batch through accumulation
    assert config.gpt_config().n_layer == 12 and config.train.precision == "bf16"


def test_overrides_are_typed_and_applied_in_order():
    config = load_config(CONFIGS / "tiny-cpu.yaml", ["optim.lr=3e-4", "train.zero_stage=2", "eval.hellaswag=null",
                                                      "optim.lr=1e-3", "model.n_layer=3", "log.tensorboard=false"])
    assert config.optim.lr == 1e-3 and isinstance(config.optim.lr, float)
    assert config.train.zero_stage == 2 and config.model.n_layer == 3 and config.log.tensorboard is False
    assert config.gpt_config().n_layer == 3


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1e-3", "unknown key 'optim.lrr'"),
    ("optimizer.lr=1e-3", "unknown key 'optimizer.lr'"),
    ("train.zero_stage=4", "is not one of 0, 1, 2, 3"),
    ("train.precision=fp8", "is not one of bf16, fp16, fp32"),
    ("train.max_steps=ten", "is not an int"),
    ("train.max_steps=1e3", "'1e3' is not an int"),
    ("optim.lr=fast", "'fast' is not a float"),
    ("log.tensorboard=maybe", "'maybe' is not a bool"),
    ("train.precision=null", "null is not allowed"),
    ("train.tokens_per_step=1000", "not a multiple of"),
    ("data.seq_len=4096", "exceeds the model's block_size"),
    ("model.name=gpt5", "unknown model name"),
    ("optim.lr", "expected KEY=VALUE"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(CONFIGS / "tiny-cpu.yaml", [override])
    assert "\n" not in str(caught.value)


def test_unknown_key_in_a_yaml_file_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  max_step: 10\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'train.max_step'"):
        load_config(path)


# ---- one rule for values: the key's type reads the text ---------------------------------------------------------
@pytest.mark.parametrize("text, value", [("3e-4", 3e-4), ("3.0e-4", 3e-4), ("0.0003", 3e-4), ("1e-3", 1e-3),
                                         ("1E-3", 1e-3), ("'1e-3'", 1e-3), ("1", 1.0)])
def test_every_float_form_is_the_same_float_in_a_file_and_in_set(tmp_path, text, value):
    # PyYAML alone (YAML 1.1) reads 3e-4 as a string and 3.0e-4 as a float
    path = tmp_path / "config.yaml"
    path.write_text(f"optim:\n  lr: {text}\n")
    from_file = load_config(path).optim.lr
    from_set = load_config(None, [f"optim.lr={text.strip(chr(39))}"]).optim.lr
    assert from_file == from_set == value
    assert type(from_file) is float and type(from_set) is float


@pytest.mark.parametrize("path", ["runs/1e3", "data/123", "1e3", "123", "0123", "1.50", "true", "2024-01-01"])
def test_a_path_is_the_text_that_was_written(tmp_path, path):
    in_file = tmp_path / "config.yaml"
    in_file.write_text(f"run_dir: {path}\ndata:\n  dir: {path}\neval:\n  hellaswag: {path}\n")
    from_file = load_config(in_file)
    from_set = load_config(None, [f"run_dir={path}", f"data.dir={path}", f"eval.hellaswag={path}"])
    from_flags = resolve_config(parse_args(["--data", path, "--run-dir", path]))
    for config in (from_file, from_set):
        assert config.run_dir == config.data.dir == config.eval.hellaswag == path
    assert from_flags.run_dir == from_flags.data.dir == path
    saved = tmp_path / "saved.yaml"  # and RUN_DIR/config.yaml reads back the same
    saved.write_text(from_file.to_yaml())
    assert load_config(saved).data.dir == path


def test_the_command_line_flags_win_over_set_and_the_file():
    args = parse_args(["--config", str(CONFIGS / "tiny-cpu.yaml"), "--set", "train.max_steps=7", "--max-steps", "9",
                       "--set", "data.dir=a", "--data", "b", "--set", "run_dir=c", "--run-dir", "d"])
    config = resolve_config(args)
    # --data is applied before every --set (a --set may edit the mixture it names): data.dir=a wins over it
    assert (config.train.max_steps, config.data.dir, config.run_dir) == (9, "a", "d")


def test_training_needs_data_but_printing_the_config_does_not():
    with pytest.raises(ConfigError, match="no training data"):
        resolve_config(parse_args(["--config", str(CONFIGS / "tiny-cpu.yaml")]))
    assert resolve_config(parse_args(["--config", str(CONFIGS / "tiny-cpu.yaml"), "--print-config"])).data.dir is None


# ---- the model section: a named size plus any GPTConfig field -------------------------------------------------
def test_the_model_section_has_every_gpt_config_field():
    model_keys = {f.name for f in dataclasses.fields(ModelSection)}
    # activation_checkpointing is set in the train section: it changes how a step is computed, not the model
    assert model_keys == {"name"} | {f.name for f in dataclasses.fields(GPTConfig)} - {"activation_checkpointing"}


def test_dropout_vocab_size_and_any_other_model_field_can_be_set(tmp_path):
    config = load_config(CONFIGS / "tiny-cpu.yaml", ["model.dropout=0.1", "model.vocab_size=1000",
                                                      "model.vocab_multiple=128", "model.bias=false"])
    gpt = config.gpt_config()
    assert (gpt.dropout, gpt.vocab_size, gpt.padded_vocab_size, gpt.bias) == (0.1, 1000, 1024, False)
    assert (gpt.n_layer, gpt.n_embd, gpt.block_size) == (2, 64, 128)  # the rest: the named size and the file
    path = tmp_path / "config.yaml"
    path.write_text("model:\n  name: mini\n  dropout: 0.2\n  vocab_size: 512\ndata:\n  seq_len: 256\n")
    gpt = load_config(path).gpt_config()
    assert (gpt.n_layer, gpt.dropout, gpt.vocab_size) == (4, 0.2, 512)
    assert load_config(path, ["train.activation_checkpointing=true"]).gpt_config().activation_checkpointing


@pytest.mark.parametrize("override, message", [
    ("model.n_layers=4", "unknown key 'model.n_layers'; model has: name, block_size, vocab_size, n_layer"),
    ("model.dropout=1.5", "dropout=1.5 must be in"),
    ("model.vocab_size=many", "'many' is not an int"),
])
def test_a_bad_model_key_or_value_is_a_one_line_error(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(CONFIGS / "tiny-cpu.yaml", [override])
    assert "\n" not in str(caught.value)
    key, value = override.split("=")
    path = tmp_path / "config.yaml"
    path.write_text(f"model:\n  {key.split('.')[1]}: {value}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


# ---- python -m model.train --print-config -----------------------------------------------------------------------
def print_config(monkeypatch, capsys, rank: int, world_size: int, *args: str) -> tuple[int, str]:
    for name in ("SLURM_PROCID", "SLURM_NTASKS", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    code = main(["--config", str(CONFIGS / "tiny-cpu.yaml"), "--print-config", *args])
    return code, capsys.readouterr().out


def test_print_config_shows_the_resolved_config_and_what_it_builds_then_exits(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    code, out = print_config(monkeypatch, capsys, 0, 2, "--run-dir", str(run_dir), "--set", "optim.lr=1e-3",
                             "--set", "train.tokens_per_step=8192", "--set", "model.dropout=0.1")
    assert code == 0
    assert not run_dir.exists()  # nothing started, nothing written
    assert [line for line in out.splitlines() if line.startswith("#")] == [
        "# model tiny: 2 layers, 2 heads of 32 (width 64), context 128 tokens",
        "# vocabulary: 50,257 tokens, padded to 50,304 (a multiple of 64)",
        # the count the trainer prints at its start, then with the position embedding
        "# parameters: 3,319,552 (+ 8,192 in the position embedding = 3,327,744)",
        "# batch: 8,192 tokens/step = 16 seq x 128 tokens x 2 rank(s) x 2 accumulation",
    ]
    shown = tmp_path / "shown.yaml"  # the output is itself a config file: the one resolved
    shown.write_text(out)
    config = load_config(shown)
    assert (config.run_dir, config.optim.lr, config.model.dropout) == (str(run_dir), 1e-3, 0.1)
    assert config == resolve_config(parse_args(["--config", str(CONFIGS / "tiny-cpu.yaml"), "--print-config",
                                                "--run-dir", str(run_dir), "--set", "optim.lr=1e-3", "--set",
                                                "train.tokens_per_step=8192", "--set", "model.dropout=0.1"]))


def test_print_config_prints_once_and_refuses_a_batch_the_ranks_cannot_make(monkeypatch, capsys):
    assert print_config(monkeypatch, capsys, 1, 2) == (0, "")  # other ranks of a launch stay quiet
    with pytest.raises(SystemExit) as exited:
        print_config(monkeypatch, capsys, 0, 3)
    assert exited.value.code == 2
    assert "is not divisible by seq_len 128 x 3 rank(s)" in capsys.readouterr().err


@pytest.mark.parametrize("world_size", [1, 8, 16, 32, 64])
@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_fits_every_rank_count(name, world_size):
    """The docs promise the same optimisation on 1 to 64 GPUs: every GPT-2 config fits every rank count. The CPU demo
    (16 sequences a step) cannot be shared by 32 or 64 ranks at all: refused in one line naming the rank count."""
    config = load_shipped(name, ["data.dir=somewhere"])
    sequences = config.train.tokens_per_step // config.data.seq_len
    if sequences % world_size:
        assert not name.startswith("gpt2"), f"{name} cannot run on {world_size} ranks"
        with pytest.raises(ConfigError, match=f"{world_size} rank"):
            batch_layout(config, world_size)
        return
    micro_batch, grad_accum = batch_layout(config, world_size)
    assert 1 <= micro_batch <= config.train.micro_batch_size  # the configured value is the most that fits
    assert micro_batch * grad_accum * world_size * config.data.seq_len == config.train.tokens_per_step


def test_only_a_batch_that_cannot_divide_is_refused():
    # 24 sequences per step: 2 ranks take 8 + 4 accumulation... any divisor works; 16 ranks cannot share 24
    config = load_config(CONFIGS / "tiny-cpu.yaml", ["data.seq_len=64", "model.block_size=64",
                                                     "train.micro_batch_size=8", f"train.tokens_per_step={24 * 64}"])
    micro_batch, grad_accum = batch_layout(config, 2)
    assert micro_batch * grad_accum == 12 and micro_batch <= 8
    with pytest.raises(ConfigError, match="16 rank"):
        batch_layout(config, 16)
