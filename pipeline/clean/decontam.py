"""N-gram decontamination: find training documents that contain an example of the evaluation suite.

Text is normalised as lm-eval's decontamination (its janitor) and GPT-3 do it, extended from ASCII to Unicode:
  1. lowercase (str.lower);
  2. delete every character that is neither a word character (Unicode letters, digits, `_`) nor whitespace:
     punctuation and symbols go, so "Don't!" -> "dont" and "U.S." -> "us";
  3. split on whitespace into words, except that every Chinese/Japanese character (Han, Hiragana, Katakana) is a
     token of its own: those languages write no spaces, so a character is the only unit both sides share without
     running a segmenter (jieba's words change with its dictionary; characters do not).
An n-gram is n consecutive tokens. An example whose tokens are mostly words gives its word 13-grams (GPT-3's and
lm-eval's n); one that is mostly CJK characters gives its character `cjk_n`-grams (a character carries about
half a word's information; docs/decontamination.md has the measurement behind the default). An example shorter
than n tokens, but at least `min_n` (`cjk_min_n`), is indexed whole, as one n-gram of its own length; a shorter
one cannot be told from common phrases and is left out (the index counts them as `uncovered`).

The index: for each n-gram length, the sorted 64-bit hashes of the examples' n-grams (xxh3 of each token, combined
by a polynomial over the n tokens) and, beside each hash, the number of the example it came from. A document is
checked by hashing its own n-grams of those lengths and looking them up (numpy searchsorted): a few milliseconds
for a long page. N-grams that occur in more than `max_examples` examples are templates, not content, and are left
out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from xxhash import xxh3_64_intdigest

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Hiragana, Katakana, Han (ext. A, unified, compat.)
_NOT_WORD = re.compile(r"[^\w\s]+")
_TOKEN = re.compile(f"[{CJK}]|[^\\s{CJK}]+")
_CJK_CHAR = re.compile(f"[{CJK}]")
_PRIME = np.uint64(0x100000001B3)  # FNV's 64-bit prime: odd, so each position's weight is a bijection mod 2**64
_EMPTY = np.zeros(0, dtype=np.uint64)


def normalise(text: str) -> str:
    """Steps 1-2 of the module docstring: lowercase, punctuation and symbols deleted."""
    return _NOT_WORD.sub("", text.lower())


def tokens(text: str) -> list[str]:
    """The normalised text's tokens: words, and single CJK characters."""
    return _TOKEN.findall(normalise(text))


def is_cjk(token: str) -> bool:
    return len(token) == 1 and _CJK_CHAR.match(token) is not None


def token_hashes(words: list[str]) -> np.ndarray:
    return np.fromiter((xxh3_64_intdigest(word) for word in words), dtype=np.uint64, count=len(words))


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """The hash of every n consecutive tokens (uint64 arithmetic wraps: a polynomial mod 2**64)."""
    count = len(hashes) - n + 1
    if count <= 0:
        return _EMPTY
    combined = hashes[:count].copy()
    for i in range(1, n):
        combined *= _PRIME
        combined += hashes[i:i + count]
    return combined


@dataclass(frozen=True)
class Settings:
    n: int = 13  # word n-grams (GPT-3, lm-eval)
    min_n: int = 8  # shorter word examples are indexed whole from this many words
    cjk_n: int = 25  # character n-grams for Chinese/Japanese examples
    cjk_min_n: int = 15
    max_examples: int = 10  # an n-gram in more examples than this is a template, not content


@dataclass(frozen=True)
class Match:
    task: str
    index: int  # the example's index in its task (gptstack.eval_data's Example.index)
    ngram: str  # the first shared n-gram, normalised
    ngrams: int  # how many of the document's n-grams are in the index


class NGramIndex:
    """Hashes of the examples' n-grams per length, with the example each came from."""

    def __init__(self, examples: list[tuple[str, int]], tables: dict[int, tuple[np.ndarray, np.ndarray]],
                 cjk_lengths: set[int], stats: dict):
        self.examples = examples  # example number -> (task, index)
        self.tables = tables  # n -> (sorted hashes, example numbers)
        self.cjk_lengths = cjk_lengths  # lengths only CJK examples use: skipped for documents without CJK
        self.stats = stats  # per task: examples, covered, uncovered, ngrams

    @classmethod
    def build(cls, examples: Iterable[tuple[str, int, str]], settings: Settings = Settings()) -> NGramIndex:
        """From (task, example index, text) triples."""
        found: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        word_lengths, cjk_lengths = set(), set()
        table, stats = [], {}
        for task, index, text in examples:
            words = tokens(text)
            cjk = sum(map(is_cjk, words)) * 2 > len(words)
            n, min_n = (settings.cjk_n, settings.cjk_min_n) if cjk else (settings.n, settings.min_n)
            entry = stats.setdefault(task, {"examples": 0, "covered": 0, "uncovered": 0, "ngrams": 0})
            entry["examples"] += 1
            if len(words) < min_n:
                entry["uncovered"] += 1
                continue
            n = min(n, len(words))
            (cjk_lengths if cjk else word_lengths).add(n)
            hashes = np.unique(ngram_hashes(token_hashes(words), n))
            found.setdefault(n, []).append((hashes, np.full(len(hashes), len(table), dtype=np.int32)))
            table.append((task, index))
            entry["covered"] += 1
            entry["ngrams"] += len(hashes)
        tables = {}
        for n, parts in found.items():
            hashes = np.concatenate([h for h, _ in parts])
            numbers = np.concatenate([e for _, e in parts])
            order = np.argsort(hashes, kind="stable")
            hashes, numbers = hashes[order], numbers[order]
            unique, first, counts = np.unique(hashes, return_index=True, return_counts=True)
            keep = counts <= settings.max_examples
            tables[n] = (unique[keep], numbers[first[keep]])
        return cls(table, tables, cjk_lengths - word_lengths, stats)

    def match(self, text: str) -> Match | None:
        """The example `text` shares n-grams with (the one it shares most with), or None."""
        words = tokens(text)
        if not words:
            return None
        hashes, has_cjk = None, None
        hits: list[tuple[int, int, np.ndarray]] = []  # (n, first position, example numbers)
        for n, (keys, numbers) in self.tables.items():
            if len(words) < n or not len(keys):
                continue
            if n in self.cjk_lengths:
                if has_cjk is None:
                    has_cjk = any(map(is_cjk, words))
                if not has_cjk:
                    continue
            if hashes is None:
                hashes = token_hashes(words)
            grams = ngram_hashes(hashes, n)
            where = np.searchsorted(keys, grams)
            where[where == len(keys)] = 0
            found = keys[where] == grams
            if found.any():
                positions = np.flatnonzero(found)
                hits.append((n, int(positions[0]), numbers[where[positions]]))
        if not hits:
            return None
        numbers = np.concatenate([h[2] for h in hits])
        values, counts = np.unique(numbers, return_counts=True)
        task, index = self.examples[int(values[np.argmax(counts)])]
        n, position, _ = hits[0]
        return Match(task, index, " ".join(words[position:position + n]), int(len(numbers)))
