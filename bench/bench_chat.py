"""What keeping the KV cache across chat turns saves (model/chat/session.py): the same multi-turn conversation, turn
by turn, with the cache kept (each turn feeds only its new tokens) and with it dropped before every turn (the whole
conversation read again, as a stateless loop would). Same model, same greedy replies: both are checked equal.

    python bench/bench_chat.py                        # CPU-sized defaults (~1 CPU-minute)
    python bench/bench_chat.py --n-layer 12 --n-head 12 --n-embd 768 --turns 12 --device cuda
    python bench/bench_chat.py --quick                # the smallest setting: does it run?

Reported per turn: prompt tokens, tokens run through the model, seconds until the first reply token, seconds for the
whole turn, for both ways; the median over --repeats runs (turns alternate kept/dropped so that a noisy machine slows
both alike). The model is randomly initialised at trained-like magnitudes: speed depends on its size, not its weights.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from model.build import build_model  # noqa: E402
from model.chat.session import ChatEngine, ChatSession, Reply, Sampling  # noqa: E402
from model.chat.template import ChatFormat  # noqa: E402
from model.gpt import GPTConfig  # noqa: E402
from pipeline.tokenizer import get_tokenizer  # noqa: E402

MESSAGE = ("Please explain, step by step and with an example, how a transformer language model keeps track of the "
           "words it has already read when it writes the next one. 请再用中文简单总结一下。")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-layer", type=int, default=6)
    parser.add_argument("--n-head", type=int, default=6)
    parser.add_argument("--n-embd", type=int, default=384)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--reply-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny model, 2 turns, 1 repeat (tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_layer, args.n_head, args.n_embd, args.block_size = 1, 2, 32, 256
        args.turns, args.reply_tokens, args.repeats = 2, 4, 1
    return args


def one_run(model, chat_format, keep: bool, args) -> list[dict]:
    encoding = chat_format.tokenizer.encoding
    engine = ChatEngine(model, lambda t: b"" if t >= encoding.n_vocab else encoding.decode_single_token_bytes(t),
                        stop_ids=(), device=args.device)  # no stop: every reply has exactly --reply-tokens
    session = ChatSession(engine, chat_format, system="You are a helpful assistant.")
    sampling = Sampling(temperature=0, max_new_tokens=args.reply_tokens)
    rows = []
    for _ in range(args.turns):
        if not keep:
            engine.reset()
        fed, reply, start = engine.fed_tokens, Reply(prompt_tokens=0), time.perf_counter()
        first = None
        for _piece in session.turn(MESSAGE, sampling, reply):
            first = first or time.perf_counter() - start
        rows.append({"prompt": reply.prompt_tokens, "fed": engine.fed_tokens - fed, "first": first,
                     "turn": time.perf_counter() - start, "ids": reply.token_ids})
    return rows


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(0)
    chat_format = ChatFormat.for_tokenizer(get_tokenizer("gpt2"))
    model = build_model(GPTConfig(vocab_size=chat_format.vocab_size, n_layer=args.n_layer, n_head=args.n_head,
                                  n_embd=args.n_embd, block_size=args.block_size))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    model = model.to(args.device).eval()
    runs = {True: [], False: []}
    for _ in range(args.repeats):
        for keep in (True, False):
            runs[keep].append(one_run(model, chat_format, keep, args))
    kept, dropped = runs[True][0], runs[False][0]
    assert [r["ids"] for r in kept] == [r["ids"] for r in dropped], "kept and dropped caches gave other replies"
    print(f"model: {args.n_layer} layers x {args.n_embd} ({sum(p.numel() for p in model.parameters()):,} parameters), "
          f"{args.block_size}-token context, {args.device}, {args.reply_tokens} tokens per reply, median of "
          f"{args.repeats}")
    print(f"{'turn':>4} {'prompt':>7} | {'fed kept':>8} {'first s':>8} {'turn s':>7} | {'fed dropped':>11} "
          f"{'first s':>8} {'turn s':>7}")
    totals = {True: 0.0, False: 0.0}
    for turn in range(args.turns):
        cells = []
        for keep in (True, False):
            first = statistics.median(r[turn]["first"] for r in runs[keep])
            whole = statistics.median(r[turn]["turn"] for r in runs[keep])
            totals[keep] += whole
            cells.append((runs[keep][0][turn]["fed"], first, whole))
        (fk, ak, tk), (fd, ad, td) = cells
        print(f"{turn + 1:>4} {kept[turn]['prompt']:>7} | {fk:>8} {ak:>8.3f} {tk:>7.3f} | {fd:>11} {ad:>8.3f} {td:>7.3f}")
    print(f"all turns: kept {totals[True]:.2f} s, dropped {totals[False]:.2f} s "
          f"({totals[False] / totals[True]:.2f}x)")


if __name__ == "__main__":
    main()
