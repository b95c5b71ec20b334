"""The optimizer and its learning-rate schedules (model/optim.py): AdamW over the model's parameter groups, cosine
and warmup-stable-decay."""
import pytest
import torch

from model.config import TrainConfig, load_config
from model.gpt import GPT
from model.optim import build_lr_scheduler, build_optimizer, learning_rate
from tests.support import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"


def test_learning_rate_schedules():
    config = TrainConfig()
    config.train.max_steps, config.optim.warmup_steps, config.optim.lr, config.optim.min_lr = 1000, 100, 1.0, 0.1
    lrs = [learning_rate(s, config) for s in range(1000)]
    assert lrs[0] == pytest.approx(0.01) and lrs[99] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:]))  # cosine: never rises after warmup
    assert lrs[550] == pytest.approx(0.55, abs=0.01) and lrs[999] == pytest.approx(0.1, abs=1e-4)
    config.optim.schedule, config.optim.decay_fraction = "wsd", 0.2
    lrs = [learning_rate(s, config) for s in range(1001)]
    assert lrs[100] == lrs[799] == 1.0  # stable phase
    assert lrs[900] == pytest.approx(0.55) and lrs[1000] == pytest.approx(0.1)


def test_optimizer_is_adamw_over_the_model_param_groups_with_the_schedule():
    config = load_config(CONFIGS / "tiny-cpu.yaml", ["optim.warmup_steps=3", "train.max_steps=12"])
    torch.manual_seed(0)
    model = GPT(config.gpt_config())
    optimizer = build_optimizer(model, config.optim, fused=False)
    assert isinstance(optimizer, torch.optim.AdamW)
    expected = model.param_groups(config.optim.weight_decay)  # decayed matrices first, then biases and gains
    assert [[id(p) for p in group["params"]] for group in optimizer.param_groups] == \
        [[id(p) for p in group["params"]] for group in expected]
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.1, 0.0]
    assert all(group["betas"] == (0.9, 0.95) and group["eps"] == 1e-8 for group in optimizer.param_groups)
    scheduler = build_lr_scheduler(optimizer, config)
    applied = []
    for _ in range(12):
        applied.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert applied == pytest.approx([learning_rate(step, config) for step in range(12)], rel=1e-12)
