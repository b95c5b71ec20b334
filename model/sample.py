"""Generate text from a checkpoint, printing each token as soon as it is chosen.

    python -m model.sample --checkpoint runs/demo --prompt "The meaning of life is" --max-new-tokens 100
"""
import argparse
import codecs
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

import tiktoken
import torch

from gptstack.cli_args import ArgumentParser
from gptstack.errors import GPTStackError, InputError, exit_with_error
from gptstack.formats import seed_argument
from model.chat.template import IM_END, IM_START, ChatFormat
from model.checkpoint.weights import load_model, resolve_checkpoint
from model.generate import MIN_TEMPERATURE, generate_stream
from model.run_tokenizer import weights_tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MAX_NEW_TOKENS = 10**6
MAX_SAMPLES = 10**4
MAX_TEMPERATURE = 1e4  # also the largest repetition penalty: beyond it the choice no longer changes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m model.sample",
        description="Continue a prompt with a trained GPT checkpoint, streaming the text to the terminal.",
        epilog="examples:\n  python -m model.sample --checkpoint runs/tiny --prompt \"The history of\" --max-new-tokens 60\n"
               "  python -m model.sample --checkpoint runs/tiny --temperature 0.8 --top-k 50 --num-samples 3")
    parser.add_argument("--checkpoint", required=True,
                        help="a weights folder (model.safetensors + config.json), a checkpoint folder holding "
                             "model/, or a training run folder (then its newest complete checkpoint is used)")
    parser.add_argument("--prompt", default="",
                        help="text to continue; empty (the default) starts from <|endoftext|>, i.e. a new document")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate per sample (200)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="divide the logits by this before sampling: < 1 safer and more repetitive, > 1 more "
                             "surprising; 0 means greedy, always the most likely token, and so does anything below "
                             f"{MIN_TEMPERATURE:g} (default 1.0)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="sample only among the k most likely tokens (default: no limit)")
    parser.add_argument("--top-p", type=float, default=None,
                        help="nucleus sampling: only among the most likely tokens whose probabilities add up to p, "
                             "e.g. 0.9 (default: no limit)")
    parser.add_argument("--repetition-penalty", type=float, default=1.0,
                        help="> 1 makes tokens already in the text less likely (Hugging Face semantics: positive "
                             "logits divided, negative ones multiplied by it); 1.0 (default) is off")
    parser.add_argument("--num-samples", type=int, default=1, help="independent continuations to print (1)")
    parser.add_argument("--seed", type=seed_argument, default=1337,
                        help="random seed, 0..2**63-1, for reproducible samples (1337)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... ; auto = cuda if available")
    parser.add_argument("--dtype", choices=["auto", *DTYPES], default="auto",
                        help="compute precision; auto = bfloat16 on a GPU that supports it, else float32")
    parser.add_argument("--no-kv-cache", action="store_true",
                        help="recompute the whole text for every new token (slow; for comparison only)")
    parser.add_argument("--through-eot", action="store_true",
                        help="keep generating past the end-of-text token (it is printed as <|endoftext|> and an "
                             "unrelated new document follows); default: stop there, as Hugging Face's generate() "
                             "does with an exported model's generation_config.json")
    args = parser.parse_args(argv)
    # Every number in one place: nan compares false with everything, so each range is written as what is accepted.
    checks = [
        (1 <= args.max_new_tokens <= MAX_NEW_TOKENS, f"--max-new-tokens must be from 1 to {MAX_NEW_TOKENS:,}"),
        (1 <= args.num_samples <= MAX_SAMPLES, f"--num-samples must be from 1 to {MAX_SAMPLES:,}"),
        (0 <= args.temperature <= MAX_TEMPERATURE, f"--temperature must be a number from 0 to {MAX_TEMPERATURE:g} "
                                                   f"(below {MIN_TEMPERATURE:g}: greedy, as 0)"),
        (args.top_k is None or args.top_k >= 1, "--top-k must be at least 1"),
        (args.top_p is None or 0 < args.top_p <= 1, "--top-p must be in (0, 1]"),
        (0 < args.repetition_penalty <= MAX_TEMPERATURE, f"--repetition-penalty must be > 0 and at most "
                                                          f"{MAX_TEMPERATURE:g}"),
    ]
    for accepted, message in checks:
        if not accepted:
            parser.error(message)
    return args


def pick_device_dtype(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise InputError(f"--device {device!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA GPU is available here")
    if dtype == "auto":
        gpu_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return device, torch.bfloat16 if gpu_bf16 else torch.float32
    return device, DTYPES[dtype]


def write_text_stream(tokens: Iterable[int], enc: tiktoken.Encoding, out: TextIO,
                      markers: dict[int, str] | None = None) -> None:
    """Print tokens as text the moment they arrive.

    A GPT-2 token is a sequence of bytes that may end in the middle of a multi-byte UTF-8 character (Chinese
    characters and emoji often take two tokens): the incremental decoder holds such bytes back until the
    character is complete, instead of printing a replacement sign for each half. `markers` names the ids past the
    BPE (a chat model's <|im_start|>/<|im_end|> on GPT-2), printed as their text.
    """
    markers = markers or {}
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for token in tokens:
        piece = enc.decode_single_token_bytes(token) if token < enc.n_vocab else markers.get(token, "").encode()
        out.write(decoder.decode(piece))
        out.flush()
    out.write(decoder.decode(b"", final=True))


def until_end_of_text(tokens: Iterable[int], eot: int, generated: list[int]) -> Iterator[int]:
    """The tokens before the first end-of-text (which ends the document the model was writing); each one kept is
    also appended to `generated`, so the caller can count them after the stream is printed."""
    for token in tokens:
        if token == eot:
            return
        generated.append(token)
        yield token


def run(args: argparse.Namespace) -> None:
    device, dtype = pick_device_dtype(args.device, args.dtype)
    model = load_model(args.checkpoint, device=device).to(dtype)
    tokenizer = weights_tokenizer(resolve_checkpoint(args.checkpoint))  # the copy the checkpoint holds, or gpt2
    enc = tokenizer.encoding
    # A GPT-2 model fine-tuned for chat (gptstack sft) has two more ids than the BPE: <|im_start|> and <|im_end|>.
    chat_format = ChatFormat.for_tokenizer(tokenizer)
    if model.config.vocab_size not in (enc.n_vocab, chat_format.vocab_size):
        raise InputError(f"checkpoint {args.checkpoint}: the model has vocab_size={model.config.vocab_size} but its "
                         f"tokenizer {tokenizer} has {enc.n_vocab} tokens; it was not trained with this tokenizer")
    prompt = enc.encode(args.prompt, allowed_special={"<|endoftext|>"}) or [enc.eot_token]
    generator = torch.Generator(device=device).manual_seed(args.seed)
    out = sys.stdout
    out.reconfigure(errors="backslashreplace")  # a console without UTF-8 (e.g. GBK) shows \U0001f642, no crash
    for sample in range(args.num_samples):
        if args.num_samples > 1:
            out.write(f"--- sample {sample + 1}/{args.num_samples} ---\n")
        out.write(args.prompt)
        out.flush()
        idx = torch.tensor([prompt], dtype=torch.long, device=device)
        start = time.perf_counter()
        tokens = generate_stream(model, idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                                 top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                                 use_kv_cache=not args.no_kv_cache, generator=generator)
        generated: list[int] = []
        stop_at = -1 if args.through_eot else enc.eot_token  # -1: no token has it, so nothing stops the stream
        write_text_stream(until_end_of_text((int(token) for token in tokens), stop_at, generated), enc, out,
                          markers={chat_format.im_start: IM_START, chat_format.im_end: IM_END})
        out.write("\n")
        seconds = time.perf_counter() - start
        stopped = " (stopped at end-of-text; --through-eot goes on)" if len(generated) < args.max_new_tokens else ""
        print(f"[{len(generated)} tokens in {seconds:.2f} s, {len(generated) / seconds:.1f} tokens/s{stopped}]",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        run(args)
    except GPTStackError as e:
        exit_with_error(e)


if __name__ == "__main__":
    main()
