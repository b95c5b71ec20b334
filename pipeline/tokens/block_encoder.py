"""Encode a stream of documents on all threads, in order, into uint16 token arrays: the tokenize stage's engine.

tiktoken's parallel limit on N cores is N threads each running `encode_ordinary` over one contiguous block of the
documents. Two things kept the stage below it (0.66x on the sample corpus, 2 cores): a barrier per batch (each batch
of 1,000 documents was split into N blocks and the next batch waited for the slowest block), and turning tiktoken's
Python lists of ints into numpy arrays (Python work, under the GIL, serialising the threads). Here:

  * documents are cut into blocks of about `block_chars` characters, each submitted to the thread pool as soon as
    it is full, with at most 2 x threads blocks in flight: no barrier, a thread that finishes picks up the next
    block while the reader keeps filling them;
  * each document is encoded into tiktoken's own buffer (`encode_to_tiktoken_buffer`, the function behind
    `Encoding.encode_to_numpy`) and viewed with `np.frombuffer`: no Python int per token;
  * results come back in submission order, so the stream is the same for any number of threads;
  * the encoding used knows only the end-of-text special token (`ordinary_encoding`): tiktoken's buffer path scans
    each text for the special tokens it knows, and a trained tokenizer's 8 made it 14% slower per token.

Special-token text inside a document ("<|endoftext|>") is encoded as plain text, exactly like `encode_ordinary`.
"""
import functools
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np
import tiktoken

NO_SPECIAL_TOKENS: frozenset = frozenset()


@functools.lru_cache(maxsize=4)
def ordinary_encoding(encoding: tiktoken.Encoding) -> tiktoken.Encoding:
    """The same ranks and pattern with the end-of-text as the only special token (ordinary encoding needs no
    other, and each special token costs a scan of every text in tiktoken's buffer path)."""
    specials = encoding._special_tokens
    if len(specials) <= 1:
        return encoding
    eot_text = next(text for text, token in specials.items() if token == encoding.eot_token)
    return tiktoken.Encoding(f"{encoding.name}-ordinary", pat_str=encoding._pat_str,
                             mergeable_ranks=encoding._mergeable_ranks, special_tokens={eot_text: encoding.eot_token})


def encode_document(encoding, text: str) -> np.ndarray:
    """`encoding.encode_ordinary(text)` as a uint32 array, without a Python list in between."""
    try:
        buffer = encoding._core_bpe.encode_to_tiktoken_buffer(text, NO_SPECIAL_TOKENS)
    except UnicodeEncodeError:  # lone surrogates: tiktoken's own encode_ordinary replaces them the same way
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        buffer = encoding._core_bpe.encode_to_tiktoken_buffer(text, NO_SPECIAL_TOKENS)
    return np.frombuffer(buffer, dtype=np.uint32)


def encode_block(encoding, texts: list[str], eot: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of `texts`, each followed by `eot`, as one uint16 array, and each document's token count (+1)."""
    pieces, lengths = [], np.empty(len(texts), dtype=np.int64)
    separator = np.array([eot], dtype=np.uint32)
    for i, text in enumerate(texts):
        ids = encode_document(encoding, text)
        pieces.append(ids)
        pieces.append(separator)
        lengths[i] = len(ids) + 1
    tokens = np.concatenate(pieces) if pieces else np.empty(0, dtype=np.uint32)
    return tokens.astype(np.uint16), lengths


def encode_stream(encoding, texts: Iterable[str], threads: int, block_chars: int = 1 << 16
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(tokens, document lengths) of consecutive blocks of `texts`, in order, encoded on `threads` threads.

    Token ids must fit uint16 (the caller checks the encoding). 64 K characters per block: small enough that the
    threads stay balanced on a few thousand documents, large enough that scheduling costs nothing measurable."""
    eot = encoding.eot_token
    encoding = ordinary_encoding(encoding)
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        block, chars = [], 0
        for text in texts:
            block.append(text)
            chars += len(text)
            if chars >= block_chars:
                pending.append(pool.submit(encode_block, encoding, block, eot))
                block, chars = [], 0
                while len(pending) > 2 * threads:
                    yield pending.popleft().result()
        if block:
            pending.append(pool.submit(encode_block, encoding, block, eot))
        while pending:
            yield pending.popleft().result()
