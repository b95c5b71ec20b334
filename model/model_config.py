"""The model's configuration: GPTConfig (every size and the family, gpt2 or qwen3), checked when it is built, and the
named sizes. Both model files (model/gpt.py, model/qwen3.py) build from it; model/build.py picks the class.
"""
import math
from dataclasses import dataclass, fields


class ModelConfigError(ValueError):
    """A model configuration that cannot be built (unknown name, heads that do not divide the width...)."""


# Upper bounds far beyond any model this project trains: an absurd size (n_layer=10**9 in a config file) is refused
# at once instead of being built layer by layer until memory runs out.
MAX_SIZES = {"block_size": 2**24, "vocab_size": 2**24, "n_layer": 10_000, "n_head": 2**16, "n_embd": 2**20,
             "vocab_multiple": 2**16}
ARCHS = ("gpt2", "qwen3")
QWEN3_ONLY_DEFAULTS = {"rope_theta": 1e6, "rms_norm_eps": 1e-6}


def _shown(value) -> str:
    """repr(value) cut short, for messages: a 4,000-digit number in a config file stays a one-line error."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit limit cannot even be printed
        return "<an integer too long to print>"
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class GPTConfig:
    block_size: int = 1024  # longest context, in tokens (gpt2: the number of position embeddings)
    vocab_size: int = 50257  # real tokens of the tokenizer (GPT-2 BPE: 50,000 merges + 256 bytes + <|endoftext|>)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0  # pretraining on lots of data does not overfit; set > 0 for small-data finetuning
    bias: bool = True  # biases in Linear and LayerNorm, as GPT-2 has (needed for Hugging Face interop)
    # The embedding/output matrices get extra rows so their size is a multiple of 64: matrix multiplies on GPUs
    # run faster on such shapes (nanoGPT: 50257 -> 50304). The extra rows never get a probability (see GPT.forward).
    vocab_multiple: int = 64
    # Recompute each Block's activations in the backward pass instead of storing them: less memory, ~30% more
    # compute. A training-time switch only; it changes no result.
    activation_checkpointing: bool = False
    # The model family: gpt2 (model/gpt.py) or qwen3 (model/qwen3.py: rotary positions, RMSNorm, SwiGLU, grouped-query
    # attention, QK-norm, no biases; Hugging Face's Qwen3ForCausalLM). The fields below are qwen3's; None means
    # the family's default, and GPT-2 accepts only the values it computes with.
    arch: str = "gpt2"
    n_kv_head: int | None = None  # key/value heads, shared by n_head // n_kv_head query heads each (None: n_head)
    head_dim: int | None = None  # width of one head (None: n_embd // n_head)
    intermediate_size: int | None = None  # hidden width of the MLP (None: 4 * n_embd for gpt2, 3 * n_embd for qwen3)
    tie_embeddings: bool | None = None  # lm_head shares the token embedding (None: gpt2 yes, qwen3 no)
    rope_theta: float = 1e6  # base of the rotary frequencies (qwen3; Qwen3 and MiniMind use 1e6, Llama 2 1e4)
    rms_norm_eps: float = 1e-6  # epsilon of every RMSNorm (qwen3)

    def __post_init__(self):
        # Types first: values come from files (config.json, Hugging Face's config.json), where "2" or 2.5 or
        # true would otherwise fail deep inside the model, or "no" would silently mean True.
        for name, most in MAX_SIZES.items():
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= most:
                raise ModelConfigError(f"model config: {name}={_shown(value)} must be an integer from 1 to {most:,}")
        for name in ("bias", "activation_checkpointing"):
            if type(getattr(self, name)) is not bool:
                raise ModelConfigError(f"model config: {name}={_shown(getattr(self, name))} must be true or false")
        if type(self.dropout) not in (int, float) or not 0.0 <= self.dropout < 1.0:
            raise ModelConfigError(f"model config: dropout={_shown(self.dropout)} must be in [0, 1)")
        self._check_family()

    def _check_family(self) -> None:
        """The family and its fields: each a one-line error naming the field."""
        if self.arch not in ARCHS:
            raise ModelConfigError(f"model config: arch={_shown(self.arch)} is not one of {', '.join(ARCHS)}")
        for name in ("n_kv_head", "head_dim", "intermediate_size"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not 1 <= value <= MAX_SIZES["n_embd"]):
                raise ModelConfigError(f"model config: {name}={_shown(value)} must be an integer from 1 to "
                                       f"{MAX_SIZES['n_embd']:,} (or null: the family's default)")
        if self.tie_embeddings is not None and type(self.tie_embeddings) is not bool:
            raise ModelConfigError(f"model config: tie_embeddings={_shown(self.tie_embeddings)} must be true, false "
                                   f"or null")
        for name, most in (("rope_theta", 1e12), ("rms_norm_eps", 1.0)):
            value = getattr(self, name)
            if type(value) not in (int, float) or not 0 < value <= most:  # also refuses nan; inf is > most
                raise ModelConfigError(f"model config: {name}={_shown(value)} must be a number > 0 and <= {most:g}")
        if self.head_dim is None and self.n_embd % self.n_head != 0:
            raise ModelConfigError(f"model config: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_head % self.kv_heads != 0:
            raise ModelConfigError(f"model config: n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}"
                                   f" (each key/value head serves the same number of query heads)")
        if self.arch == "gpt2":
            # GPT-2 computes with exactly these; a setting it would silently ignore is refused instead.
            fixed = {"n_kv_head": self.n_head, "head_dim": self.n_embd // self.n_head,
                     "intermediate_size": 4 * self.n_embd, "tie_embeddings": True}
            for name, value in fixed.items():
                if getattr(self, name) not in (None, value):
                    raise ModelConfigError(f"model config: {name}={_shown(getattr(self, name))} is not GPT-2's "
                                           f"({value}); set arch: qwen3 for that")
            for name in ("rope_theta", "rms_norm_eps"):
                if getattr(self, name) != QWEN3_ONLY_DEFAULTS[name]:
                    raise ModelConfigError(f"model config: {name} is a qwen3 setting; GPT-2 has no "
                                           f"{'rotary positions' if name == 'rope_theta' else 'RMSNorm'}")
        else:
            if self.bias:
                raise ModelConfigError("model config: bias=true, but qwen3 has no biases (as Qwen3ForCausalLM); "
                                       "set bias: false")
            if self.head_size % 2:
                raise ModelConfigError(f"model config: head_dim={self.head_size} is odd; rotary positions turn "
                                       f"pairs of dimensions")

    # The family's defaults, resolved: what the model classes read.
    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def head_size(self) -> int:
        return self.head_dim or self.n_embd // self.n_head

    @property
    def mlp_size(self) -> int:
        return self.intermediate_size or (4 if self.arch == "gpt2" else 3) * self.n_embd

    @property
    def tied(self) -> bool:
        return self.tie_embeddings if self.tie_embeddings is not None else self.arch == "gpt2"

    def shape(self) -> dict:
        """What decides the weights' shapes (and the family), every default resolved: two configs with the same
        shape hold the same tensors, whatever they spelt out or left to the default."""
        return {"arch": self.arch, "block_size": self.block_size if self.arch == "gpt2" else None,
                "vocab_size": self.vocab_size, "vocab_multiple": self.vocab_multiple, "n_layer": self.n_layer,
                "n_embd": self.n_embd, "n_head": self.n_head, "n_kv_head": self.kv_heads, "head_dim": self.head_size,
                "intermediate_size": self.mlp_size, "tie_embeddings": self.tied, "bias": self.bias}

    @property
    def padded_vocab_size(self) -> int:
        return math.ceil(self.vocab_size / self.vocab_multiple) * self.vocab_multiple

    @classmethod
    def from_name(cls, name: str, **overrides) -> "GPTConfig":
        """A named size ("gpt2", "gpt2-medium", ..., or a small CPU size "tiny"/"mini"/"small"), fields overridable."""
        if name not in NAMED_CONFIGS:
            raise ModelConfigError(f"unknown model name {name!r}; known: {', '.join(NAMED_CONFIGS)}")
        values = {**NAMED_CONFIGS[name], **overrides}
        if values.get("arch") == "qwen3":
            values.setdefault("bias", False)  # a GPT-2 size turned into qwen3 (`name: tiny, arch: qwen3`)
        return cls(**values)

    @classmethod
    def from_dict(cls, values: dict) -> "GPTConfig":
        """Build from a dict (config.json, a YAML section); unknown keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelConfigError(f"model config: unknown field(s) {', '.join(unknown)}; "
                                   f"known: {', '.join(sorted(known))}")
        return cls(**values)


NAMED_CONFIGS = {
    # The four OpenAI GPT-2 sizes (parameter counts as usually quoted, with the 50257-token embedding).
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    # Small sizes that train on a laptop CPU (tests, the quick start demo). Same tokenizer, shorter context.
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=128),  # 3.3M, of which 3.2M are the embedding
    "mini": dict(n_layer=4, n_head=4, n_embd=128, block_size=256),  # 7.3M
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256),  # 30M
    # qwen3 (model/qwen3.py). With half as many key/value heads as query heads and an MLP 3x the width (Qwen3's own
    # ratio: 0.6B, 1.7B, 8B), a layer has 12 * n_embd^2 weights, exactly a GPT-2 block of the same width: each size
    # matches the GPT-2 size named beside it in non-embedding parameters. The untied head adds an embedding-sized
    # matrix (38.6M at 768 wide with GPT-2's vocabulary): qwen3-125m has 85M + 2 x 38.6M = 162M in all, named,
    # like modded-nanogpt's untied 124M, after the GPT-2 it is compared with.
    "qwen3-tiny": dict(arch="qwen3", n_layer=2, n_head=2, n_kv_head=1, n_embd=64, block_size=128),  # ~ tiny
    "qwen3-mini": dict(arch="qwen3", n_layer=4, n_head=4, n_kv_head=2, n_embd=128, block_size=256),  # ~ mini
    "qwen3-small": dict(arch="qwen3", n_layer=6, n_head=6, n_kv_head=3, n_embd=384, block_size=256),  # ~ small
    "qwen3-125m": dict(arch="qwen3", n_layer=12, n_head=12, n_kv_head=6, n_embd=768),  # ~ gpt2
    "qwen3-350m": dict(arch="qwen3", n_layer=24, n_head=16, n_kv_head=8, n_embd=1024),  # ~ gpt2-medium
    # 16 heads of 128 (Qwen3-1.7B's heads and width, 20 of its 28 layers): 1.0B in the layers, 1.21B in all
    "qwen3-1b": dict(arch="qwen3", n_layer=20, n_head=16, n_kv_head=8, n_embd=2048),
}
