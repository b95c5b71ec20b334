"""Model speed, side by side in one process: our GPT vs Hugging Face GPT2LMHeadModel, and the KV cache.

    python bench/bench_model.py                       # CPU-sized defaults (~3 minutes on 2 cores)
    python bench/bench_model.py --n-layer 12 --n-head 12 --n-embd 768 --device cuda   # GPT-2 124M on a GPU
    python bench/bench_model.py --quick               # smallest setting: does it run? (tests)

1. Training step (forward + backward) tokens/s of both models at the same size and batch, in turns
   (ours, HF, ours, HF, ...) so that a noisy machine slows both alike; the median of the repeats is reported.
   Target: ours >= 1.0x HF.
2. Generation tokens/s with the KV cache vs recomputing the whole text for every token (build-nanogpt's
   loop), both through model.generate. Target: >= 5x at 256 new tokens. HF generate (with its own cache)
   is shown for reference.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from model.generate import generate  # noqa: E402
from model.gpt import GPT, GPTConfig  # noqa: E402

# --quick: the smallest model and runs, to check that the script still runs; the figures it prints mean nothing.
QUICK = {"n_layer": 1, "n_head": 2, "n_embd": 32, "batch_size": 1, "seq_len": 16, "repeats": 1, "new_tokens": 8,
         "gen_repeats": 1, "prompt_len": 4}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def training_step(model: torch.nn.Module, idx: torch.Tensor, hugging_face: bool):
    def step():
        model.zero_grad(set_to_none=True)
        # both see the same seq_len input tokens; HF shifts the labels itself (one prediction fewer per row)
        loss = model(idx[:, :-1], labels=idx[:, :-1]).loss if hugging_face else model(idx[:, :-1], idx[:, 1:])[1]
        loss.backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-layer", type=int, default=6)
    parser.add_argument("--n-head", type=int, default=6)
    parser.add_argument("--n-embd", type=int, default=384)
    parser.add_argument("--vocab-size", type=int, default=50257)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per row in the training step")
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens generated in the generation test")
    parser.add_argument("--gen-repeats", type=int, default=2, help="timed generations per method")
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice). On a machine shared with other busy "
                             "processes, 1 avoids threads waiting for each other, which hurts one-token steps most")
    parser.add_argument("--quick", action="store_true", help="the smallest setting (" +
                        ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()) + "): does it run?")
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"command: {' '.join([sys.executable.split('/')[-1], *sys.argv])}")
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()}")

    # --- 1. training step, ours vs Hugging Face -------------------------------------------------------------
    block = max(args.seq_len + 1, args.prompt_len + args.new_tokens)
    config = GPTConfig(block_size=block, vocab_size=args.vocab_size, n_layer=args.n_layer, n_head=args.n_head,
                       n_embd=args.n_embd)
    ours = GPT(config).to(device).train()
    hf = GPT2LMHeadModel(GPT2Config(n_positions=block, vocab_size=args.vocab_size, n_layer=args.n_layer,
                                    n_head=args.n_head, n_embd=args.n_embd, resid_pdrop=0.0, embd_pdrop=0.0,
                                    attn_pdrop=0.0)).to(device).train()
    print(f"model: {args.n_layer} layers, {args.n_head} heads, width {args.n_embd}, "
          f"{ours.num_parameters(non_embedding=False) / 1e6:.1f}M parameters (HF attention: "
          f"{hf.config._attn_implementation}); batch {args.batch_size} x {args.seq_len} tokens")
    idx = torch.randint(0, args.vocab_size, (args.batch_size, args.seq_len + 1), device=device)
    steps = {"ours": training_step(ours, idx, False), "hf": training_step(hf, idx, True)}
    for step in steps.values():
        step()  # warm-up (allocations, kernel selection)
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(time_call(step, device))
    tokens = args.batch_size * args.seq_len
    train_tps = {name: tokens / statistics.median(t) for name, t in times.items()}
    del hf, steps

    # --- 2. generation, KV cache vs recomputation -----------------------------------------------------------
    ours.eval()
    prompt = torch.randint(0, args.vocab_size, (1, args.prompt_len), device=device)
    hf_gen = GPT2LMHeadModel(GPT2Config(n_positions=block, vocab_size=args.vocab_size, n_layer=args.n_layer,
                                        n_head=args.n_head, n_embd=args.n_embd)).to(device).eval()
    hf_kwargs = dict(attention_mask=torch.ones_like(prompt), do_sample=False, pad_token_id=0)
    runs = {
        "cached": lambda n: generate(ours, prompt, n, temperature=0),
        "recompute": lambda n: generate(ours, prompt, n, temperature=0, use_kv_cache=False),
        "hf": lambda n: hf_gen.generate(prompt, max_new_tokens=n, min_new_tokens=n, **hf_kwargs),
    }
    gen_times = {name: [] for name in runs}
    with torch.no_grad():
        for run in runs.values():
            run(8)  # warm-up
        for _ in range(args.gen_repeats):  # in turns, like the training steps
            for name, run in runs.items():
                gen_times[name].append(time_call(lambda: run(args.new_tokens), device))
    cached_s, recompute_s, hf_s = (statistics.median(gen_times[name]) for name in runs)

    n = args.new_tokens
    print()
    print("| measurement | ours | reference | ratio |")
    print("|---|---|---|---|")
    print(f"| training step fwd+bwd, tokens/s (median of {args.repeats}) | {train_tps['ours']:,.0f} | "
          f"HF GPT2LMHeadModel {train_tps['hf']:,.0f} | {train_tps['ours'] / train_tps['hf']:.2f}x |")
    print(f"| generation of {n} tokens, tokens/s (median of {args.gen_repeats}) | KV cache {n / cached_s:,.1f} | "
          f"recompute {n / recompute_s:,.1f} | {recompute_s / cached_s:.1f}x |")
    print(f"| generation of {n} tokens, tokens/s | KV cache {n / cached_s:,.1f} | HF generate (its cache) "
          f"{n / hf_s:,.1f} | {hf_s / cached_s:.2f}x |")


if __name__ == "__main__":
    main()
