"""Write a checkpoint as one GGUF file that llama.cpp runs, with the tokenizer it was trained with.

    python -m model.convert --checkpoint runs/tiny --to-gguf tiny.gguf
    llama-simple -m tiny.gguf -n 32 "The history of"       # greedy, as model.sample --temperature 0

Why not only --to-hf and llama.cpp's own convert_hf_to_gguf.py: that converter recognises a BPE tokenizer by a hash
of the ids it gives a fixed text, so a vocabulary trained here (every Chinese model) is refused ("BPE pre-tokenizer
was not recognized"), whatever its split pattern. Here the file is written directly with the `gguf` package (the
library that converter uses), and the pre-tokenizer is chosen from our split pattern itself:

  * weights: float32, under llama.cpp's tensor names (gguf's own TensorNameMap from the Hugging Face names, which
    both families use), architecture `gpt2` or `qwen3`. The vocabulary padding rows of the token embedding (and of
    an untied head) are dropped, so llama.cpp's n_vocab is the tokenizer's. A tied head is not stored: llama.cpp
    reuses the token embedding. GPT-2 without biases gets zero biases (llama.cpp's gpt2 requires them; zeros
    compute the same).
  * vocabulary: ids 0..n_vocab-1, each BPE token as GPT-2's byte-to-character text (llama.cpp's byte-level BPE
    reads that), the special tokens (<|endoftext|>, ChatML's markers) as CONTROL tokens.
  * merges: every split of every token, in the order of the token it makes (pipeline/tokenizer/folder.py
    merges_from_ranks, the same list as a trained tokenizer's tokenizer.json): merge-list BPE then picks the pairs
    tiktoken picks.
  * tokenizer.ggml.pre: the llama.cpp pre-tokenizer whose split equals our pattern (PRE_TOKENIZERS); a pattern
    llama.cpp does not implement (nanochat's 2-digit numbers) is refused rather than split differently.
  * no BOS in front of a prompt (the model never saw one there); end-of-text is BOS and EOS, so generation stops
    where a document would end.

The output file is replaced only if an earlier --to-gguf wrote it (its `gptstack.export` key); any other existing
file needs --force. The file is written to a temporary sibling and renamed into place (gptstack/files.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np
import torch
from tiktoken_ext.openai_public import r50k_pat_str

from gptstack.errors import GPTStackError, exit_with_error
from gptstack.files import atomic_write
from gptstack.output_folder import OutputFolderError
from model.chat.hf_files import chat_export_format
from model.chat.template import CHATML_TEMPLATE
from model.checkpoint.weights import load_model, resolve_checkpoint
from model.run_tokenizer import weights_tokenizer
from pipeline.tokenizer import Tokenizer
from pipeline.tokenizer.tokenizer import CHAT_TOKENS
from pipeline.tokenizer.folder import bytes_to_unicode, merges_from_ranks
from pipeline.tokenizer.train import PATTERNS

COMMAND = "model.convert --to-gguf"
MARKER_KEY = "gptstack.export"  # written into every file we make: a rerun may replace it
# Our split patterns -> the llama.cpp pre-tokenizer that splits text the same way (src/llama-vocab.cpp; both are
# implemented there by hand-written splitters, unicode_regex_split_custom_gpt2 / _llama3):
#   gpt2 (and tiktoken's r50k, the same split): "gpt-2"
#   gpt4 (cl100k's): "llama-bpe", Llama 3's, whose regex is cl100k's written without (?i) and possessive
#   quantifiers (equivalent here), and which looks a whole piece up before merging, as tiktoken does.
PRE_TOKENIZERS = {PATTERNS["gpt2"]: "gpt-2", r50k_pat_str: "gpt-2", PATTERNS["gpt4"]: "llama-bpe"}
GGUF_ARCH = {"gpt2": gguf.MODEL_ARCH.GPT2, "qwen3": gguf.MODEL_ARCH.QWEN3}
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, which model/gpt.py uses


class GGUFExportError(GPTStackError):
    """A checkpoint or tokenizer that cannot become a GGUF file llama.cpp runs the same way."""


# ------------------------------------------------------------------------------------------------- tokenizer
def pre_tokenizer(tokenizer: Tokenizer) -> str:
    """The llama.cpp pre-tokenizer name for the tokenizer's split pattern, or a GGUFExportError saying why none."""
    pattern = tokenizer.encoding._pat_str  # what tiktoken splits with: a folder's pattern, or the named encoding's
    if pattern not in PRE_TOKENIZERS:
        named = tokenizer.folder.meta.get("pattern_name") if tokenizer.folder else tokenizer.name
        raise GGUFExportError(f"tokenizer {tokenizer.label} splits text with the {named!r} pattern, which no llama.cpp "
                              f"pre-tokenizer implements (it has gpt2's and gpt4's): llama.cpp would give other ids; "
                              f"train the tokenizer with --pattern gpt4 (the default) to run the model in llama.cpp")
    return PRE_TOKENIZERS[pattern]


def vocabulary(tokenizer: Tokenizer, vocab_size: int | None = None) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges) as GGUF stores a byte-level BPE: the token of every id 0..vocab_size-1 (a GPT-2
    model fine-tuned for chat has 2 ids more than its tokenizer: <|im_start|>, <|im_end|>, model/chat)."""
    vocab_size = vocab_size or tokenizer.vocab_size
    encoding = tokenizer.encoding
    ranks = tokenizer.folder.ranks if tokenizer.folder else encoding._mergeable_ranks
    specials = tokenizer.folder.meta["special_tokens"] if tokenizer.folder else encoding._special_tokens
    to_text = bytes_to_unicode()
    as_text = lambda token: "".join(to_text[byte] for byte in token)  # noqa: E731
    by_id: dict[int, tuple[str, int]] = {rank: (as_text(token), gguf.TokenType.NORMAL) for token, rank in ranks.items()}
    by_id.update({token_id: (text, gguf.TokenType.CONTROL) for text, token_id in specials.items()})
    if vocab_size > tokenizer.vocab_size:
        by_id.update({tokenizer.special_id(text): (text, gguf.TokenType.CONTROL) for text in CHAT_TOKENS})
    if sorted(by_id) != list(range(vocab_size)):  # a tiktoken encoding with holes in its ids
        raise GGUFExportError(f"tokenizer {tokenizer.label}: its ids are not 0..{vocab_size - 1} each once")
    tokens, types = zip(*(by_id[i] for i in range(vocab_size)))
    merges = [f"{as_text(a)} {as_text(b)}" for a, b in merges_from_ranks(ranks)]
    return list(tokens), [int(t) for t in types], merges


# ------------------------------------------------------------------------------------------------- weights
def gguf_tensors(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The model's weights under llama.cpp's names, float32, without vocabulary padding or a tied head's copy."""
    config = model.config
    arch = config.arch
    names = gguf.get_tensor_name_map(GGUF_ARCH[arch], config.n_layer)
    tied = config.tied
    state = dict(model.state_dict())
    if arch == "gpt2" and not config.bias:  # llama.cpp's gpt2 needs every bias; zeros compute the same
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.LayerNorm)) and name != "lm_head":
                state.setdefault(f"{name}.bias", torch.zeros(module.weight.shape[0]))
    tensors = {}
    for name, tensor in state.items():
        if name == "lm_head.weight" and tied:
            continue  # llama.cpp uses the token embedding when the file has no output.weight
        tensor = tensor.detach().to("cpu", torch.float32)
        if name in (model.TOKEN_EMBEDDING, "lm_head.weight"):
            tensor = tensor[: config.vocab_size]  # the padding rows: no token has them
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise GGUFExportError(f"weight {name} has no llama.cpp name for architecture {arch}")
        tensors[gguf_name] = tensor.contiguous().numpy()
    return tensors


def _add_hyperparameters(writer: gguf.GGUFWriter, config) -> None:
    writer.add_context_length(config.block_size)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_head_count(config.n_head)
    if config.arch == "gpt2":
        writer.add_feed_forward_length(4 * config.n_embd)
        writer.add_layer_norm_eps(LAYER_NORM_EPS)
        return
    writer.add_feed_forward_length(config.mlp_size)
    writer.add_head_count_kv(config.kv_heads)
    writer.add_key_length(config.head_size)
    writer.add_value_length(config.head_size)
    writer.add_rope_dimension_count(config.head_size)  # every dimension of a head is rotated
    writer.add_rope_freq_base(float(config.rope_theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))


def write_gguf(model: torch.nn.Module, tokenizer: Tokenizer, path: str | Path, name: str = "model") -> Path:
    """Write `model` with `tokenizer` (the one it was trained with) to the GGUF file `path`, atomically."""
    config, path = model.config, Path(path)
    chat = chat_export_format(tokenizer, config.vocab_size)  # ChatML's ids, when the model has their rows
    if config.vocab_size not in (tokenizer.vocab_size, chat.vocab_size if chat else None):
        raise GGUFExportError(f"tokenizer {tokenizer.label} has {tokenizer.vocab_size:,} ids but the model "
                              f"{config.vocab_size:,}")
    pre = pre_tokenizer(tokenizer)
    tokens, types, merges = vocabulary(tokenizer, config.vocab_size)
    tensors = gguf_tensors(model)

    def write(temp: Path) -> None:
        writer = gguf.GGUFWriter(temp, gguf.MODEL_ARCH_NAMES[GGUF_ARCH[config.arch]])
        writer.add_name(name)
        writer.add_string(MARKER_KEY, COMMAND)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        _add_hyperparameters(writer, config)
        writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        writer.add_bos_token_id(tokenizer.eot_token)
        writer.add_eos_token_id(tokenizer.eot_token)
        writer.add_add_bos_token(False)
        writer.add_add_eos_token(False)
        if chat is not None:  # llama.cpp's chat tools format turns with it and stop at <|im_end|>
            writer.add_chat_template(CHATML_TEMPLATE)
            writer.add_eot_token_id(chat.im_end)
        for tensor_name, array in tensors.items():
            writer.add_tensor(tensor_name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
        writer.close()

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)
    return path


# ------------------------------------------------------------------------------------------------- the command
def written_by_us(path: Path) -> bool:
    """A GGUF file an earlier --to-gguf wrote (its marker key); anything unreadable is not."""
    try:
        with open(path, "rb") as file:
            if file.read(4) != b"GGUF":
                return False
        field = gguf.GGUFReader(path).get_field(MARKER_KEY)
        return field is not None and field.contents() == COMMAND
    except Exception:  # a file of the user's that only starts like a GGUF: theirs
        return False


def claim_output_file(path: Path, force: bool) -> None:
    """Refuse, before any input is read, an output path holding anything but a GGUF file we wrote (--force
    replaces a file, saying so; a folder never)."""
    if path.is_dir():
        raise OutputFolderError(f"--to-gguf {path}: is a folder; give the path of the .gguf file to write")
    if path.parent.exists() and not path.parent.is_dir():
        raise OutputFolderError(f"--to-gguf {path}: {path.parent} is not a folder")
    if (path.exists() or path.is_symlink()) and (path.is_symlink() or not written_by_us(path)):
        if not force:
            raise OutputFolderError(f"--to-gguf {path}: exists and is not a GGUF file {COMMAND} wrote; give "
                                    f"another path, or add --force to replace it")
        print(f"--force: {COMMAND} replaces {path}", file=sys.stderr, flush=True)


def run_to_gguf(checkpoint: Path, out: Path, force: bool) -> None:
    """`python -m model.convert --checkpoint CHECKPOINT --to-gguf FILE`: errors are one line, exit 2."""
    try:
        claim_output_file(out, force)
        model = load_model(checkpoint)
        weights_folder = resolve_checkpoint(checkpoint)
        tokenizer = weights_tokenizer(weights_folder)
        write_gguf(model, tokenizer, out, name=Path(checkpoint).resolve().name)
        print(f"exported {checkpoint} -> {out} ({out.stat().st_size:,} bytes; llama.cpp: llama-simple -m {out} "
              f"\"PROMPT\")")
    except GPTStackError as e:
        exit_with_error(e)
    except OSError as e:  # a write that failed midway (a full disk): the temporary file is gone, the input untouched
        exit_with_error(GPTStackError(f"cannot write {out}: {e.strerror or e}; nothing was written"))
