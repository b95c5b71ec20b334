"""The tokenization stage: documents in, one token stream per datatrove task out.

Each task encodes its documents with tiktoken in blocks on all its threads (pipeline/tokens/block_encoder.py;
special-token text such as "<|endoftext|>" inside a document is encoded as plain text, never as the special id), appends the
end-of-text id after every document and appends the uint16 tokens to `<rank>.tokens`, and each document's token
count (end-of-text included) as int64 to `<rank>.doc_tokens`. Both are written atomically (gptstack/files.py): they
appear when the task ends, so a crashed task leaves nothing that looks finished. `pipeline.tokens.pack` later cuts
these streams into shards.
"""
import itertools
from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from cluster.env import usable_cpus
from gptstack.files import atomic_file
from pipeline.tokenizer.tokenizer import Tokenizer
from pipeline.tokens.block_encoder import encode_stream


def task_stream_paths(folder, rank: int) -> tuple[Path, Path]:
    """(tokens, doc_tokens) files of one task."""
    return Path(folder) / f"{rank:05d}.tokens", Path(folder) / f"{rank:05d}.doc_tokens"


class TokenizeToStream(PipelineStep):
    """Tokenize documents into this task's token stream (a terminal step: it yields nothing)."""

    name = "🔤 Tokenize (tiktoken)"
    type = "🔢 - TOKENIZER"

    def __init__(self, output_folder: str, tokenizer: Tokenizer | None, threads: int | None = None):
        """`tokenizer`: the run's Tokenizer (pipeline/tokenizer/tokenizer.py; a trained one is set once it exists);
        `threads`: tiktoken encoding threads (default: the usable CPUs; give each of N parallel tasks CPUs / N)."""
        super().__init__()
        self.output_folder, self.tokenizer = str(output_folder), tokenizer
        self.threads = threads or usable_cpus()

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.tokenizer.check_fits_uint16()
        encoding = self.tokenizer.encoding
        tokens_path, lengths_path = task_stream_paths(self.output_folder, rank)
        tokens_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(tokens_path) as tokens_file, atomic_file(lengths_path) as lengths_file:
            # Blocks of documents are encoded on all threads while the steps before us read the next ones
            # (pipeline/tokens/block_encoder.py: no barrier between batches, no Python list per document).
            for encoded in encode_stream(encoding, (doc.text for doc in data), self.threads):
                self._write(encoded, tokens_file, lengths_file)
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
