"""The optimizer and its learning-rate schedules (model/optim.py): AdamW over the model's parameter groups, or Muon for
the layers' matrices and AdamW for the rest (both families), cosine and warmup-stable-decay."""
import json

import pytest
import torch

from model.build import build_model
from model.checkpoint.layout import CheckpointError
from model.checkpoint.manager import check_compatible
from model.config import ConfigError, TrainConfig, load_config
from model.gpt import GPT
from model.muon import MuonAdamW
from model.optim import build_lr_scheduler, build_optimizer, learning_rate, split_parameters
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


@pytest.mark.parametrize("overrides, adamw_matrices", [
    ([], ["transformer.wte.weight", "transformer.wpe.weight"]),  # GPT-2: lm_head is wte (tied), one parameter
    (["model.arch=qwen3", "model.n_kv_head=1"], ["model.embed_tokens.weight", "lm_head.weight"]),  # untied head
    (["model.arch=qwen3", "model.n_kv_head=1", "model.tie_embeddings=true"], ["model.embed_tokens.weight"]),
])
def test_muon_takes_every_matrix_of_the_layers_and_adamw_the_embeddings_head_norms_and_biases(overrides,
                                                                                               adamw_matrices):
    config = load_config(CONFIGS / "tiny-cpu.yaml", ["optim.name=muon", *overrides])
    model = build_model(config.gpt_config())
    names = {id(p): name for name, p in model.named_parameters()}
    groups = split_parameters(model, config.optim)
    muon, adamw = groups[0], groups[1:]
    # Chosen independently of split_parameters: every 2-D parameter under the family's layer prefix
    layer_matrices = sorted(name for name, p in model.named_parameters()
                            if name.startswith(type(model).LAYER_PREFIX) and p.dim() == 2)
    assert len(layer_matrices) == 2 * (4 if config.gpt_config().arch == "gpt2" else 7)  # q,k,v,o,gate,up,down
    assert (muon["use_muon"], muon["lr"], muon["weight_decay"]) == (True, 0.02, 0.0)
    assert sorted(names[id(p)] for p in muon["params"]) == layer_matrices
    assert [g["use_muon"] for g in adamw] == [False, False] and all(g["lr"] == 3e-3 for g in adamw)
    assert [names[id(p)] for p in adamw[0]["params"]] == adamw_matrices and adamw[0]["weight_decay"] == 0.1
    assert all(p.dim() == 1 for p in adamw[1]["params"]) and adamw[1]["weight_decay"] == 0.0  # norms and biases
    every = [id(p) for g in groups for p in g["params"]]
    assert sorted(every) == sorted(id(p) for p in model.parameters())  # each parameter exactly once

    optimizer = build_optimizer(model, config.optim, fused=True)  # fused is AdamW's CUDA kernel: not used by Muon
    assert isinstance(optimizer, MuonAdamW)
    assert optimizer.param_groups[0]["momentum"] == 0.95
    scheduler = build_lr_scheduler(optimizer, config)  # one schedule, each group from its own base rate
    for step in range(12):
        factor = learning_rate(step, config) / config.optim.lr
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.02 * factor, 3e-3 * factor, 3e-3 * factor])
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_muon_with_a_zero_stage_that_flattens_the_matrices_is_one_line_before_any_work(stage):
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIGS / "gpt2-124m.yaml", ["optim.name=muon", f"train.zero_stage={stage}"])
    message = str(caught.value)
    assert "\n" not in message and "optim.name=muon" in message and f"train.zero_stage=0, not {stage}" in message
    assert load_config(CONFIGS / "gpt2-124m.yaml", ["optim.name=muon", "train.zero_stage=0"]).optim.name == "muon"


def test_a_checkpoint_resumes_only_with_the_optimizer_it_was_trained_with(tmp_path):
    # trainer_state.json records optim.name; one written before the key existed holds AdamW's state
    gpt = load_config(CONFIGS / "tiny-cpu.yaml").gpt_config()
    state = {"step": 4, "world_size": 1, "zero_stage": 0, "precision": "fp32", "loader": {"samples_consumed": 8},
             "model": {key: getattr(gpt, key) for key in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd")}}
    for name, recorded in [("old", {}), ("adamw", {"optim": "adamw"}), ("muon", {"optim": "muon"})]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.json").write_text(json.dumps({**state, **recorded}))
    assert check_compatible(tmp_path / "old", gpt, 128)["step"] == 4
    assert check_compatible(tmp_path / "muon", gpt, 128, "muon")["step"] == 4
    with pytest.raises(CheckpointError, match="optimizer state of optim.name=adamw, the config has optim.name=muon"):
        check_compatible(tmp_path / "adamw", gpt, 128, "muon")
    with pytest.raises(CheckpointError, match="optim.name=muon, the config has optim.name=adamw") as caught:
        check_compatible(tmp_path / "muon", gpt, 128, "adamw")
    assert "\n" not in str(caught.value)
