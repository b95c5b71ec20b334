"""The qwen3 family <-> Hugging Face transformers' `Qwen3ForCausalLM` (model/convert.py calls these; no remote code).

Our parameter names are Qwen3ForCausalLM's and the computation is the same (model/qwen3.py), so a conversion is:
  * the vocabulary padding: our token embedding (and an untied lm_head) has extra rows up to a multiple of 64,
    Hugging Face has exactly vocab_size rows; export drops them, import adds zero rows.
  * a tied lm_head.weight is the token embedding: stored once (save_pretrained leaves it out too).
  * config.json: our GPTConfig fields under Hugging Face's names.
Only what Qwen3ForCausalLM computes the way our model does is imported: no biases, silu, no sliding window, plain
rotary positions (no scaling); anything else is refused in one line naming the key.
"""
import json
from pathlib import Path

import torch

from gptstack.files import atomic_write
from gptstack.formats import field
from model.checkpoint.layout import CheckpointError
from model.checkpoint.weights import build_model, save_safetensors
from model.model_config import MAX_SIZES, GPTConfig, ModelConfigError

PADDED = ("model.embed_tokens.weight", "lm_head.weight")  # the matrices with one row per token
ROPE_THETA_DEFAULT = 10000.0  # transformers' Qwen3Config when config.json names none


def hf_qwen3_config(config: GPTConfig, eot: int | None) -> dict:
    """config.json of a Qwen3ForCausalLM with our model's sizes. rope_theta is written both ways: transformers 5
    reads rope_parameters, older versions (and other runtimes' converters) the top-level key."""
    theta = float(config.rope_theta)
    return {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd, "intermediate_size": config.mlp_size, "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head, "num_key_value_heads": config.kv_heads, "head_dim": config.head_size,
        "hidden_act": "silu", "max_position_embeddings": config.block_size, "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": theta, "rope_parameters": {"rope_type": "default", "rope_theta": theta}, "rope_scaling": None,
        "tie_word_embeddings": config.tied, "attention_bias": False, "attention_dropout": config.dropout,
        "use_sliding_window": False, "sliding_window": None, "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": eot, "eos_token_id": eot, "pad_token_id": None, "torch_dtype": "float32",
    }


def write_qwen3_hf(model: torch.nn.Module, folder: Path, eot: int | None) -> None:
    """model.safetensors and config.json of `model` (arch qwen3) in `folder`, Qwen3ForCausalLM's own layout."""
    config = model.config
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tied:
            continue  # the token embedding; transformers ties it again on load (tie_word_embeddings)
        tensor = tensor.detach().to("cpu", torch.float32)
        tensors[name] = (tensor[: config.vocab_size] if name in PADDED else tensor).contiguous()
    save_safetensors(tensors, folder / "model.safetensors")
    atomic_write(folder / "config.json", json.dumps(hf_qwen3_config(config, eot), indent=2) + "\n")


def read_qwen3_config(hf: dict, config_path: Path) -> GPTConfig:
    """A Hugging Face Qwen3 config.json as our GPTConfig: every field typed and ranged, the unsupported refused."""
    where = f"{config_path}: "
    sizes = {ours: field(hf, key, int, where, CheckpointError, low=1, high=MAX_SIZES.get(ours, MAX_SIZES["n_embd"]))
             for key, ours in (("max_position_embeddings", "block_size"), ("vocab_size", "vocab_size"),
                               ("num_hidden_layers", "n_layer"), ("num_attention_heads", "n_head"),
                               ("hidden_size", "n_embd"), ("intermediate_size", "intermediate_size"))}
    sizes["n_kv_head"] = field(hf, "num_key_value_heads", int, where, CheckpointError, default=sizes["n_head"],
                               low=1, high=MAX_SIZES["n_head"])
    sizes["head_dim"] = field(hf, "head_dim", int, where, CheckpointError,
                              default=sizes["n_embd"] // sizes["n_head"], low=1, high=MAX_SIZES["n_embd"])
    for key, need in (("hidden_act", "silu"), ("attention_bias", False), ("use_sliding_window", False)):
        if hf.get(key, need) != need:
            raise CheckpointError(f"{where}{key}={hf[key]!r} is not supported (need {need!r})")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if not isinstance(rope, dict) or rope.get("rope_type", rope.get("type", "default")) != "default":
        raise CheckpointError(f"{where}rope scaling {str(rope)[:80]} is not supported (plain rotary positions only)")
    theta = field(rope, "rope_theta", (int, float), where, CheckpointError, default=None, low=0, high=1e12)
    theta = field(hf, "rope_theta", (int, float), where, CheckpointError, default=ROPE_THETA_DEFAULT, low=0,
                  high=1e12) if theta is None else theta
    layer_types = hf.get("layer_types") or []
    if any(kind != "full_attention" for kind in layer_types if isinstance(layer_types, list)):
        raise CheckpointError(f"{where}layer_types holds sliding-window layers; only full attention is supported")
    try:
        return GPTConfig(arch="qwen3", bias=False, **sizes, rope_theta=float(theta),
                         rms_norm_eps=float(field(hf, "rms_norm_eps", (int, float), where, CheckpointError,
                                                  default=1e-6, low=0, high=1)),
                         tie_embeddings=field(hf, "tie_word_embeddings", bool, where, CheckpointError, default=False),
                         dropout=float(field(hf, "attention_dropout", (int, float), where, CheckpointError,
                                             default=0.0, low=0, high=0.999)))
    except ModelConfigError as e:  # sizes that do not fit together (heads not dividing...)
        raise CheckpointError(f"{config_path}: {e}") from None


def qwen3_from_hf(config: GPTConfig, tensors: dict[str, torch.Tensor], folder: Path) -> torch.nn.Module:
    """Our qwen3 model from a Qwen3ForCausalLM folder's tensors; `config` from read_qwen3_config."""
    ours = {}
    for name, tensor in tensors.items():
        if name == "lm_head.weight" and config.tied:
            continue  # some files store the tied copy too: the embedding is the one kept
        tensor = tensor.float()  # files saved in bf16 (every Qwen3 on the Hub) too: we compute and store fp32
        if name in PADDED:
            if tuple(tensor.shape) != (config.vocab_size, config.n_embd):
                raise CheckpointError(f"{folder}: tensor {name} has shape {tuple(tensor.shape)}, config.json implies "
                                      f"{(config.vocab_size, config.n_embd)}")
            padded = tensor.new_zeros(config.padded_vocab_size, config.n_embd)  # padding rows are zeros
            padded[: config.vocab_size] = tensor
            tensor = padded
        ours[name] = tensor
    return build_model(config, ours, source=folder).eval()
