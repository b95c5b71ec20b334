"""Tokenization speed, side by side on the same documents: `python bench/bench_tokenize.py`.

  raw tiktoken    encoding.encode_ordinary_batch on batches of documents (no conversion, nothing written)
  our step        pipeline.tokens.tokenize_step.TokenizeToStream fed datatrove Documents, writing its uint16 stream
                  and per-document counts to a temporary folder (exactly what `prepare` runs in each task)
  build-nanogpt   fineweb.py's way: multiprocessing.Pool(cpu_count // 2) + encode_ordinary per document
                  + np.uint16 array per document + np.save of the shard

Targets: our step >= 0.9x raw tiktoken and >= 1.5x build-nanogpt (wall clock, same cores). Each method runs
--repeat times, interleaved; the best run counts (the least disturbed by other processes). tokens/CPU-s (all
threads and worker processes) shows how much work each method spends per token, which load hardly changes.

    python bench/bench_tokenize.py --quick     # smallest setting: does it run? (tests)
"""
import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datatrove.data import Document  # noqa: E402

from pipeline.read.corpora import sample_corpus_path  # noqa: E402
from pipeline.tokens.tokenize_step import TokenizeToStream, batched, task_stream_paths  # noqa: E402
from pipeline.tokenizer import get_tokenizer  # noqa: E402

BATCH = 1000  # documents per batch, as in TokenizeToStream
# --quick: a few documents once, to check that the script still runs; the speeds it prints mean nothing.
QUICK = {"repeat": 1, "documents": 200}


def raw_tiktoken(texts, workdir):
    encoding = get_tokenizer("gpt2").encoding
    return sum(len(ids) + 1 for batch in batched(texts, BATCH) for ids in encoding.encode_ordinary_batch(batch))


def our_step(texts, workdir):
    documents = (Document(text=text, id=str(i)) for i, text in enumerate(texts))
    step = TokenizeToStream(workdir, get_tokenizer("gpt2"))
    for _ in step.run(documents, rank=0, world_size=1):
        pass
    return task_stream_paths(workdir, 0)[0].stat().st_size // 2


def _nanogpt_tokenize(text):  # build-nanogpt fineweb.py: eot first, then the document
    encoding = get_tokenizer("gpt2").encoding
    tokens = [encoding.eot_token] + encoding.encode_ordinary(text)
    return np.array(tokens).astype(np.uint16)


def build_nanogpt(texts, workdir):
    shard_size = 100_000_000
    all_tokens = np.empty((shard_size,), dtype=np.uint16)
    count = 0
    with mp.get_context("fork").Pool(max(1, os.cpu_count() // 2)) as pool:
        for tokens in pool.imap(_nanogpt_tokenize, texts, chunksize=16):
            all_tokens[count:count + len(tokens)] = tokens
            count += len(tokens)
    np.save(os.path.join(workdir, "shard_000000"), all_tokens[:count])
    return count


def cpu_seconds() -> float:
    """CPU time of this process (all threads) plus its finished children (the Pool's workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


METHODS = {"raw tiktoken": raw_tiktoken, "our step": our_step, "build-nanogpt": build_nanogpt}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the fastest counts (default: 3)")
    parser.add_argument("--copies", type=int, default=1, help="feed the sample corpus this many times (default: 1)")
    parser.add_argument("--documents", type=int, default=None,
                        help="only the sample corpus's first N documents (default: all)")
    parser.add_argument("--quick", action="store_true", help="the smallest setting (" +
                        ", ".join(f"--{k} {v}" for k, v in QUICK.items()) + "): does it run?")
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    texts = [e["extract"] for e in json.loads(sample_corpus_path().read_text()).values()][:args.documents]
    texts *= args.copies
    get_tokenizer("gpt2").encoding  # built once before timing (and inherited by the Pool's forked workers)
    best, best_cpu = {}, {}
    for _ in range(args.repeat):
        for name, method in METHODS.items():  # interleaved, so a busy moment hurts all methods alike
            with tempfile.TemporaryDirectory() as workdir:
                start, cpu_start = time.perf_counter(), cpu_seconds()
                tokens = method(texts, workdir)
                seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, tokens)
            best_cpu[name] = min(best_cpu.get(name, float("inf")), cpu)
    counts = {tokens for _, tokens in best.values()}
    assert len(counts) == 1, f"methods disagree on the token count: {best}"
    corpus = f"first {args.documents:,} of the sample corpus" if args.documents else "sample corpus"
    print(f"{len(texts):,} documents, {counts.pop():,} tokens ({corpus} x{args.copies}), "
          f"{os.cpu_count()} CPUs, best of {args.repeat}")
    print(f"{'method':14} {'docs/s':>10} {'tokens/s':>12} {'vs raw':>7} {'vs nanogpt':>11} {'tokens/CPU-s':>13}")
    for name, (seconds, tokens) in best.items():
        print(f"{name:14} {len(texts) / seconds:>10,.0f} {tokens / seconds:>12,.0f} "
              f"{best['raw tiktoken'][0] / seconds:>6.2f}x {best['build-nanogpt'][0] / seconds:>10.2f}x "
              f"{tokens / best_cpu[name]:>13,.0f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(above the CPU count, other processes were competing and wall-clock ratios are noisy)")
    print(f"command: python bench/bench_tokenize.py --repeat {args.repeat} --copies {args.copies}"
          + (f" --documents {args.documents}" if args.documents else ""))


if __name__ == "__main__":
    main()
