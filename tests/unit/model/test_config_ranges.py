"""Every training config value is range-checked in one place (model/config.py RANGES / check_ranges), mixture
weights in source_specs: nan, inf, absurd and out-of-range values are one ConfigError line, from a file or --set."""
import pytest

from gptstack.errors import GPTStackError
from model.config import ConfigError, load_config
from model.data.mixture import MixtureError
from model.data.mixture_batches import parse_data_argument, source_specs

CONFIG = "tiny-cpu"


@pytest.mark.parametrize("override, fragment", [
    ("optim.beta1=1.5", "optim.beta1=1.5 must be in [0, 1)"),
    ("optim.beta2=1", "optim.beta2=1.0 must be in [0, 1)"),
    ("optim.beta1=-0.1", "optim.beta1=-0.1 must be in [0, 1)"),
    ("optim.lr=nan", "optim.lr=nan must be a finite number"),
    ("optim.lr=inf", "optim.lr=inf must be a finite number"),
    ("optim.lr=1e40", "optim.lr=1e+40 must be > 0 and finite in float32"),
    ("optim.lr=0", "optim.lr=0.0 must be > 0"),
    ("optim.min_lr=nan", "optim.min_lr=nan must be a finite number"),
    ("optim.weight_decay=nan", "optim.weight_decay=nan must be a finite number"),
    ("optim.weight_decay=-1", "optim.weight_decay=-1.0 must be >= 0"),
    ("optim.eps=0", "optim.eps=0.0 must be in (0, 1]"),
    ("optim.decay_fraction=nan", "optim.decay_fraction=nan must be a finite number"),
    ("train.grad_clip=inf", "train.grad_clip=inf must be a finite number"),
    ("train.grad_clip=-1", "train.grad_clip=-1.0 must be >= 0"),
    ("train.seed=-1", "train.seed=-1 must be from 0 to 2**63-1"),
    ("train.seed=1180591620717411303424", "train.seed=1180591620717411303424 must be from 0 to 2**63-1"),  # 2**70
    ("data.seed=-3", "data.seed=-3 must be from 0 to 2**63-1"),
    ("train.max_steps=0", "train.max_steps=0 must be from 1 to"),
    ("train.max_steps=10000000000000", "train.max_steps=10000000000000 must be from 1 to"),
    ("train.micro_batch_size=-4", "train.micro_batch_size=-4 must be from 1 to"),
    ("train.fp16_initial_scale_power=1000", "train.fp16_initial_scale_power=1000 must be from 0 to 64"),
    ("eval.val_batches=0", "eval.val_batches=0 must be from 1 to"),
    ("eval.every=-1", "eval.every=-1 must be from 0 to"),
    ("eval.hellaswag_examples=0", "eval.hellaswag_examples=0 must be from 1 to"),
    ("checkpoint.keep_last=0", "checkpoint.keep_last=0 must be from 1 to"),
    ("log.every=0", "log.every=0 must be from 1 to"),
    ("model.n_layer=1000000000", "n_layer=1000000000 must be an integer from 1 to 10,000"),
    ("model.dropout=nan", "dropout=nan must be in [0, 1)"),
])
def test_an_out_of_range_value_is_one_line_naming_the_key(tmp_path, override, fragment):
    with pytest.raises(ConfigError) as error:
        load_config(CONFIG, [override])
    assert fragment in str(error.value) and "\n" not in str(error.value)
    section, key = override.split("=")[0].split(".")  # the same value written in a config file
    path = tmp_path / "config.yaml"
    path.write_text(f"{section}:\n  {key}: {override.split('=', 1)[1]}\n")
    with pytest.raises(ConfigError, match="must be"):
        load_config(path)


@pytest.mark.parametrize("override", [
    "optim.beta1=0", "optim.beta2=0.999999", "optim.min_lr=0", "optim.lr=10", "train.grad_clip=0",
    "train.seed=0", "train.seed=9223372036854775807", "data.seed=9223372036854775807", "optim.weight_decay=0",
    "eval.every=0", "checkpoint.every=0", "eval.hellaswag_examples=null",
])
def test_the_edges_of_each_range_are_accepted(override):
    load_config(CONFIG, [override, "optim.min_lr=0"])


@pytest.mark.parametrize("weights, fragment", [
    ("1e308,1e308", "the weights add up to inf"),  # each finite, their sum not: the fractions were all 0
    ("nan,1", "weight nan must be a finite number >= 0"),
    ("inf,1", "weight inf must be a finite number >= 0"),
    ("-1,1", "weight -1.0 must be a finite number >= 0"),
    ("0,0", "the weights add up to 0.0"),
])
def test_mixture_weights_are_finite_with_a_positive_sum(tmp_path, weights, fragment):
    first, second = weights.split(",")
    text = f"a={tmp_path}/a:{first},b={tmp_path}/b:{second}"
    with pytest.raises(MixtureError, match=fragment):
        source_specs(parse_data_argument(text))
    with pytest.raises(GPTStackError, match=fragment):  # train's main says it in one line
        load_config(CONFIG, base={"data.sources": text})


def test_one_weight_set_absurd_at_a_resume_is_refused(tmp_path):
    mix = f"a={tmp_path}/a:1,b={tmp_path}/b:1"
    with pytest.raises(MixtureError, match="add up to inf"):
        load_config(CONFIG, ["data.sources.a.weight=1e308", "data.sources.b.weight=1e308"], base={"data.sources": mix})
    assert [s["weight"] for s in load_config(CONFIG, ["data.sources.a.weight=3"], base={"data.sources": mix})
            .data.sources] == [3.0, 1.0]
