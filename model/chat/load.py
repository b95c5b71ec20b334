"""Open what `gptstack chat` and `gptstack serve` talk to: a run folder, a checkpoint, a weights folder or a
Hugging Face export (`model.convert --to-hf`), with its tokenizer and chat format, as a ChatEngine."""
from __future__ import annotations

from pathlib import Path

from gptstack.errors import InputError
from model.chat.session import ChatEngine
from model.chat.template import ChatFormat
from model.checkpoint.layout import CheckpointError, is_hf_export
from model.checkpoint.weights import load_model, resolve_checkpoint
from model.run_tokenizer import weights_tokenizer
from model.sample import pick_device_dtype
from pipeline.tokenizer import get_tokenizer


def load_chat(path: str | Path, device: str = "auto", dtype: str = "auto", seed: int = 1337):
    """-> (ChatEngine, ChatFormat). Every problem with the folder is one GPTStackError line."""
    from model.convert import gpt_from_hf  # transformers' import is paid only for an export

    path = Path(path)
    torch_device, torch_dtype = pick_device_dtype(device, dtype)
    if is_hf_export(path):
        model = gpt_from_hf(path)
        # Our exports carry Hugging Face's tokenizer files, not ours: GPT-2 BPE is the one we can rebuild (a model
        # on a trained tokenizer chats from the checkpoint it was exported from, which holds the tokenizer folder).
        tokenizer = get_tokenizer("gpt2")
    else:
        model = load_model(path)
        tokenizer = weights_tokenizer(resolve_checkpoint(path))
    chat_format = ChatFormat.for_tokenizer(tokenizer)
    if model.config.vocab_size not in (tokenizer.vocab_size, chat_format.vocab_size):
        what = "an export of a model on a trained tokenizer? use its checkpoint" if is_hf_export(path) else \
            "it was not trained with this tokenizer"
        raise CheckpointError(f"checkpoint {path}: the model has vocab_size={model.config.vocab_size:,} but its "
                              f"tokenizer {tokenizer} has {tokenizer.vocab_size:,} ids ({what})")
    if chat_format.im_end >= model.config.padded_vocab_size:
        raise InputError(f"checkpoint {path}: its embedding has no row for <|im_end|> (id {chat_format.im_end})")
    model = model.to(torch_device, torch_dtype)
    encoding = tokenizer.encoding

    def token_bytes(token: int) -> bytes:
        # the chat markers (and ids past a base model's vocabulary) print as nothing: they are never reply text
        if token in (chat_format.im_start, chat_format.im_end) or token >= encoding.n_vocab:
            return b""
        return encoding.decode_single_token_bytes(token)

    return ChatEngine(model, token_bytes, chat_format.stop_ids, torch_device, seed), chat_format


def add_model_arguments(parser) -> None:
    """The options chat and serve share: what to load, and where."""
    from gptstack.formats import seed_argument
    from model.sample import DTYPES

    parser.add_argument("--checkpoint", required=True,
                        help="a training run folder (its newest complete checkpoint), a checkpoint folder, a weights "
                             "folder, or a Hugging Face export of a GPT-2-tokenizer model (model.convert --to-hf)")
    parser.add_argument("--seed", type=seed_argument, default=1337, help="random seed of the sampling (1337)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... ; auto = cuda if available")
    parser.add_argument("--dtype", choices=["auto", *DTYPES], default="auto",
                        help="compute precision; auto = bfloat16 on a GPU that supports it, else float32")
