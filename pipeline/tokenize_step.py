"""The tokenization stage: documents in, one token stream per datatrove task out.

Each task encodes its documents in batches with tiktoken's `encode_ordinary` (special-token text such as
"<|endoftext|>" inside a document is encoded as plain text, never as the special id), appends the end-of-text id
after every document and appends the uint16 tokens to `<rank>.tokens`, and each document's token count (end-of-text
included) as int64 to `<rank>.doc_tokens`. Both are written atomically (pipeline/files.py): they appear when the
task ends, so a crashed task leaves nothing that looks finished. `pipeline.pack` later cuts these streams into shards.
"""
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from pipeline.files import atomic_file
from pipeline.tokenizer import check_fits_uint16, get_encoding


def task_stream_paths(folder, rank: int) -> tuple[Path, Path]:
    """(tokens, doc_tokens) files of one task."""
    return Path(folder) / f"{rank:05d}.tokens", Path(folder) / f"{rank:05d}.doc_tokens"


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def encode_batch(encoding, texts: list[str], eot: int, pool: ThreadPoolExecutor, threads: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of `texts`, each followed by `eot`, as one uint16 array, and each document's token count.

    Each of `threads` threads encodes one contiguous block of documents. tiktoken's own `encode_ordinary_batch`
    submits one thread-pool task per document, and on web-sized documents that scheduling costs more than the
    encoding: with 2 threads it ran at half the speed of a plain one-thread loop (bench/bench_tokenize.py). The
    Rust encoder releases the GIL, so blocks run truly in parallel.
    """
    block = -(-len(texts) // threads)  # ceil
    blocks = [texts[i:i + block] for i in range(0, len(texts), block)]
    encoded = pool.map(lambda part: [encoding.encode_ordinary(text) for text in part], blocks)
    ids = list(itertools.chain.from_iterable(encoded))
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    # One flat conversion and one vectorised insert of the end-of-text ids: much cheaper than a numpy array per doc.
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.uint16, count=int(lengths.sum()))
    return np.insert(flat, np.cumsum(lengths), eot), lengths + 1


class TokenizeToStream(PipelineStep):
    """Tokenize documents into this task's token stream (a terminal step: it yields nothing)."""

    name = "🔤 Tokenize (tiktoken)"
    type = "🔢 - TOKENIZER"

    def __init__(self, output_folder: str, tokenizer: str = "gpt2", batch_size: int = 1000, threads: int | None = None):
        """`threads`: tiktoken encoding threads (default: the usable CPUs; give each of N parallel tasks CPUs / N)."""
        super().__init__()
        self.output_folder, self.tokenizer, self.batch_size = str(output_folder), tokenizer, batch_size
        self.threads = threads or usable_cpus()

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        encoding = get_encoding(self.tokenizer)
        check_fits_uint16(encoding)
        tokens_path, lengths_path = task_stream_paths(self.output_folder, rank)
        tokens_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(tokens_path) as tokens_file, atomic_file(lengths_path) as lengths_file, \
                ThreadPoolExecutor(max_workers=1) as encoder, ThreadPoolExecutor(self.threads) as pool:
            # Batch i is encoded in the background while the steps before us read and parse batch i + 1.
            pending = None
            for batch in batched(data, self.batch_size):
                next_pending = encoder.submit(encode_batch, encoding, [doc.text for doc in batch], encoding.eot_token,
                                             pool, self.threads)
                if pending:
                    self._write(pending.result(), tokens_file, lengths_file)
                pending = next_pending
            if pending:
                self._write(pending.result(), tokens_file, lengths_file)
        return
        yield  # a generator that yields nothing: datatrove drives the steps by iterating them

    def _write(self, encoded: tuple[np.ndarray, np.ndarray], tokens_file, lengths_file) -> None:
        tokens, lengths = encoded
        with self.track_time(unit="batch"):
            tokens_file.write(memoryview(tokens))
            lengths_file.write(memoryview(lengths))
        self.stat_update("documents", value=len(lengths), unit="batch")
        self.stat_update("tokens", value=len(tokens), unit="batch")


def batched(iterable, size):
    """Lists of `size` items (itertools.batched exists only from Python 3.12)."""
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
