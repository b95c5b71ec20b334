"""eval.suite's settings are checked when the trainer starts, and its keys land under eval/ in TensorBoard."""
import pytest

from model.config import ConfigError, EvalSection
from model.eval.in_loop import in_loop_suite
from model.metrics import tensorboard_tag
from pipeline.tokenizer import get_tokenizer


def test_an_unknown_task_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="eval.suite=copa,nope: unknown evaluation task nope"):
        in_loop_suite(EvalSection(suite="copa,nope"), get_tokenizer("gpt2").encoding, 128)


def test_off_by_default_and_named_after_its_suite():
    encoding = get_tokenizer("gpt2").encoding
    assert in_loop_suite(EvalSection(), encoding, 128) is None
    suite = in_loop_suite(EvalSection(suite="quick", suite_every=50, suite_limit=5), encoding, 128)
    assert suite.tasks == ["hellaswag", "arc_easy", "piqa", "lambada"]
    assert [suite.due(step, final=False) for step in (25, 50, 100)] == [False, True, True]
    assert suite.due(130, final=True)


def test_suite_keys_keep_their_tensorboard_prefix():
    assert tensorboard_tag("eval/hellaswag") == "eval/hellaswag"
    assert tensorboard_tag("eval/quick_centered") == "eval/quick_centered"
    assert tensorboard_tag("val_loss") == "eval/val_loss" and tensorboard_tag("loss") == "train/loss"
