"""The DeepSpeed config the engine is built from (model/engine.py): batch layout, ZeRO stage, precision, clipping."""
import pytest

from model.config import ConfigError, load_config
from model.engine import deepspeed_config
from tests.support import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_deepspeed_config(stage, precision):
    config = load_config(CONFIGS / "gpt2-124m.yaml", [f"train.zero_stage={stage}", f"train.precision={precision}"])
    ds = deepspeed_config(config, world_size=4)
    assert ds["train_micro_batch_size_per_gpu"] == 64 and ds["gradient_accumulation_steps"] == 2
    assert ds["train_batch_size"] * 1024 == 2**19
    assert ds["zero_optimization"]["stage"] == stage
    assert ds["bf16"]["enabled"] == (precision == "bf16") and ds["fp16"]["enabled"] == (precision == "fp16")
    assert ds["fp16"]["loss_scale"] == 0  # dynamic loss scaling
    assert ds["gradient_clipping"] == 1.0
    if stage:  # buckets of n_embd^2 elements, at least 1M, at most the model's 124M parameters
        assert ds["zero_optimization"]["reduce_bucket_size"] == 2**20
    with pytest.raises(ConfigError, match="not divisible"):
        deepspeed_config(config, world_size=3)
