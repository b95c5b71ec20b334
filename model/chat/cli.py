"""`gptstack chat` (= python -m model.chat): talk to a model in the terminal, the reply streamed as it is sampled.

    gptstack chat --checkpoint runs/sft --system "You are a helpful assistant." --temperature 0.7 --top-p 0.9

The conversation lives in a ChatSession (model/chat/session.py): the KV cache is kept across turns, so each turn
runs only its new tokens through the model. Lines are read with readline (line editing and history; GNU readline
measures Chinese and other wide characters by their display width under a UTF-8 locale, which Python sets up).
"""
from __future__ import annotations

import argparse
import sys

from gptstack.cli_args import ArgumentParser
from gptstack.errors import GPTStackError, exit_with_error
from model.chat.load import add_model_arguments, load_chat
from model.chat.session import ChatSession, ContextFullError, Reply, Sampling
from model.generate import MIN_TEMPERATURE

MAX_NEW_TOKENS = 10**6
MAX_PENALTY = 1e4  # beyond this the choice no longer changes (model.sample's bound)
PROMPT = ">>> "
COMMANDS = "/reset forgets the conversation (the system prompt stays), /quit or Ctrl-D ends"


def add_sampling_arguments(parser: argparse.ArgumentParser, max_new_tokens: int = 256) -> None:
    parser.add_argument("--temperature", type=float, default=0.7,
                        help=f"divide the logits by this before sampling; 0 (or below {MIN_TEMPERATURE:g}) is greedy")
    parser.add_argument("--top-p", type=float, default=0.9,
                        help="nucleus sampling: only among the most likely tokens adding up to p; 1 is off")
    parser.add_argument("--repetition-penalty", type=float, default=1.0,
                        help="> 1 makes tokens already in the conversation less likely (Hugging Face's "
                             "RepetitionPenaltyLogitsProcessor: positive logits divided, negative multiplied); "
                             "1 is off")
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help="longest reply, in tokens")


def check_sampling(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Each range written as what is accepted (nan compares false with everything)."""
    checks = [(1 <= args.max_new_tokens <= MAX_NEW_TOKENS, f"--max-new-tokens must be from 1 to {MAX_NEW_TOKENS:,}"),
              (0 <= args.temperature <= MAX_PENALTY, f"--temperature must be from 0 to {MAX_PENALTY:g}"),
              (0 < args.top_p <= 1, "--top-p must be in (0, 1]"),
              (0 < args.repetition_penalty <= MAX_PENALTY, f"--repetition-penalty must be > 0 and at most "
                                                           f"{MAX_PENALTY:g}")]
    for accepted, message in checks:
        if not accepted:
            parser.error(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="gptstack chat",
        description="A multi-turn chat with a model in the terminal (ChatML, as `gptstack sft` trains). Type a "
                    f"message and Enter; {COMMANDS}. A base model that was never fine-tuned answers, but badly.",
        epilog="examples:\n  gptstack chat --checkpoint runs/sft\n"
               "  gptstack chat --checkpoint runs/sft --system \"你是一个乐于助人的助手。\" --temperature 0.8 --top-p 0.95\n"
               "  gptstack chat --checkpoint hf/sft --temperature 0 --repetition-penalty 1.2 --max-new-tokens 100")
    add_model_arguments(parser)
    parser.add_argument("--system", default=None, help="a system prompt, first in every conversation (none)")
    add_sampling_arguments(parser)
    args = parser.parse_args(argv)
    check_sampling(parser, args)
    return args


def read_line() -> str | None:
    """One line from the user, None at end of input (Ctrl-D)."""
    try:
        return input(PROMPT)
    except EOFError:
        return None


def chat(args: argparse.Namespace) -> None:
    try:
        import readline  # noqa: F401  (input() gains line editing and history; absent on some platforms)
    except ImportError:
        pass
    engine, chat_format = load_chat(args.checkpoint, args.device, args.dtype, args.seed)
    session = ChatSession(engine, chat_format, args.system)
    sampling = Sampling(args.temperature, args.top_p, args.repetition_penalty, args.max_new_tokens)
    out = sys.stdout
    out.reconfigure(errors="backslashreplace")  # a console without UTF-8 shows escapes, no crash
    print(f"chatting with {args.checkpoint} ({engine.block_size:,}-token context). {COMMANDS}.", file=sys.stderr)
    while True:
        line = read_line()
        if line is None:
            out.write("\n")
            return
        text = line.strip()
        if text in ("/quit", "/exit"):
            return
        if text == "/reset":
            session.reset()
            print("[conversation reset]", file=sys.stderr)
            continue
        if not text:
            continue
        reply = Reply(prompt_tokens=0)
        try:
            for piece in session.turn(line, sampling, reply):
                out.write(piece)
                out.flush()
        except KeyboardInterrupt:  # Ctrl-C stops this reply; the unfinished exchange is not kept
            out.write(" [stopped; not kept]")
        except ContextFullError as e:
            print(f"error: {e}; /reset and try a shorter message", file=sys.stderr)
            continue
        out.write("\n")
        out.flush()
        if not reply.token_ids:
            print("[empty reply: the model ended its turn at once, as a base model that was never fine-tuned on "
                  "conversations often does]", file=sys.stderr)
        if session.dropped:
            print(f"[context full: the {session.dropped} oldest message(s) were forgotten]", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        chat(args)
    except GPTStackError as e:
        exit_with_error(e)
    except KeyboardInterrupt:
        print(file=sys.stderr)


if __name__ == "__main__":
    main()
