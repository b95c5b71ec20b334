"""Train a byte-level BPE tokenizer on documents, deterministically, with rustbpe (Rust, all CPUs).

    documents -> seeded sample of at most `max_chars` characters -> rustbpe merges -> tokenizer folder

Why rustbpe and not Hugging Face `tokenizers`' BpeTrainer: on the same 8.8 M characters of Chinese + English
(2 shared CPUs) it trained a 32,768-id tokenizer in 30 s against 82 s, produced the identical merges for the same
split pattern, is deterministic run to run, and yields tiktoken's mergeable ranks directly (the format the tokenize
stage encodes with), whereas `tokenizers` numbers its vocabulary in its own order and needs re-ranking. The
Hugging Face `tokenizer.json` is derived from the ranks either way (pipeline/tokenizer/folder.py).
Figures and commands: bench/bench_tokenizer.py and docs/tokenizer.md.

The sample: every document gets a key, BLAKE2b(text) keyed with the seed, and the sample is the documents with the
smallest keys whose characters fit `max_chars` (kept in a heap while reading, so memory stays about `max_chars`).
It depends only on the set of documents and the seed, not on their order or how many tasks read them, and is fed
to the trainer in key order.
"""
import hashlib
import heapq
import logging
import re
from dataclasses import dataclass
from importlib.metadata import version
from typing import Iterable

from tqdm import tqdm

from gptstack.errors import InputError
from gptstack.formats import MAX_SEED
from pipeline.tokenizer.folder import MAX_IDS, SPECIAL_TOKENS, load_tokenizer_folder, write_tokenizer_folder

# Split patterns: text is cut into pieces by this regex first, and merges never cross a piece boundary.
PATTERNS = {
    # GPT-2 (r50k): letters, digits (any run), punctuation, each optionally after one space.
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    # GPT-4 (cl100k): case-insensitive contractions, one leading non-letter may join a word (so "，我们" or "(the"
    # can be one piece), digits in runs of at most 3, newlines kept apart from other whitespace.
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|"""
            r"""\s+(?!\S)|\s+""",
    # nanochat: GPT-4's, with digit runs of at most 2 (spends fewer ids on numbers in a small vocabulary).
    "nanochat": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|"""
                r"""\s+(?!\S)|\s+""",
}
DEFAULT_PATTERN = "gpt4"  # measured best of the three on held-out Chinese web text, equal to nanochat's on English
DEFAULT_MAX_CHARS = 1_000_000_000
DEFAULT_SEED = 1337
MIN_IDS = 256 + len(SPECIAL_TOKENS)


@dataclass(frozen=True)
class TrainSettings:
    vocab_size: int  # all ids, the special tokens included
    pattern: str = DEFAULT_PATTERN  # a PATTERNS name
    max_chars: int = DEFAULT_MAX_CHARS
    seed: int = DEFAULT_SEED

    def check(self) -> None:
        """Refuse impossible settings in one line, before any document is read."""
        if not MIN_IDS <= self.vocab_size <= MAX_IDS:
            raise InputError(f"--vocab-size {self.vocab_size:,}: must be between {MIN_IDS} (256 bytes + "
                             f"{len(SPECIAL_TOKENS)} special tokens) and {MAX_IDS:,} (ids must fit the uint16 shards)")
        if self.pattern not in PATTERNS:
            raise InputError(f"--pattern {self.pattern!r}: choose one of {', '.join(PATTERNS)}")
        if self.max_chars < 1:
            raise InputError(f"--max-chars must be at least 1, got {self.max_chars}")
        if not 0 <= self.seed <= MAX_SEED:
            raise InputError(f"--seed {self.seed}: must be 0..{MAX_SEED} (the seeds numpy and torch both accept)")

    @property
    def merges(self) -> int:
        return self.vocab_size - len(SPECIAL_TOKENS) - 256


def document_key(text: str, seed: int) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16,
                           key=seed.to_bytes(8, "little", signed=True)).digest()


@dataclass
class Sample:
    texts: list[str]  # in key order
    documents_seen: int
    chars_seen: int

    @property
    def chars(self) -> int:
        return sum(map(len, self.texts))

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for text in self.texts:
            digest.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
        return digest.hexdigest()


def sample_documents(texts: Iterable[str], max_chars: int, seed: int, progress: bool = True) -> Sample:
    """The documents with the smallest seeded keys that fit in `max_chars` characters (see the module docstring).

    A max-heap holds the current sample; when it overflows, the largest keys leave and no document with a key at or
    above the smallest one that left may enter afterwards, so the result is exactly a prefix of the key order."""
    heap: list[tuple[bytes, str]] = []  # (inverted key, text): heapq is a min-heap, so the largest key is on top
    held = seen = chars_seen = 0
    cutoff = None  # the smallest key ever evicted
    bar = tqdm(texts, desc="sample", unit=" docs", disable=not progress, mininterval=1.0)
    for text in bar:
        seen += 1
        chars_seen += len(text)
        key = document_key(text, seed)
        if cutoff is not None and key >= cutoff:
            continue
        heapq.heappush(heap, (bytes(255 - b for b in key), text))
        held += len(text)
        while held > max_chars:
            inverted, evicted = heapq.heappop(heap)
            held -= len(evicted)
            key_out = bytes(255 - b for b in inverted)
            cutoff = key_out if cutoff is None else min(cutoff, key_out)
        if seen % 1000 == 0:
            bar.set_postfix_str(f"{held:,} chars kept", refresh=False)
    bar.close()
    ordered = sorted(heap, reverse=True)  # inverted keys descending = keys ascending
    return Sample([text for _, text in ordered], seen, chars_seen)


class _MergeProgress(logging.Handler):
    """rustbpe reports through Python logging ("Progress: 12% (3900/32504 merges) - ... (frequency: 41)"):
    turn that into a progress bar, and remember the frequency of the latest merge."""

    MESSAGE = re.compile(r"\((\d+)/(\d+) merges\).*\(frequency: (\d+)\)")

    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar, self.last_frequency, self.first_merge_seen_once = bar, None, None

    def emit(self, record: logging.LogRecord) -> None:
        match = self.MESSAGE.search(record.getMessage())
        if not match:
            self.bar.set_postfix_str(record.getMessage()[:60])
            return
        done, total, frequency = map(int, match.groups())
        self.bar.total = total
        self.bar.update(done - self.bar.n)
        if frequency < 2 and self.first_merge_seen_once is None:
            self.first_merge_seen_once = done  # approximate: progress comes every 1%
        self.last_frequency = frequency


def train_ranks(sample: Sample, settings: TrainSettings, progress: bool = True) -> dict[bytes, int]:
    """BPE mergeable ranks (bytes -> id, 256 single bytes first) with `settings.merges` merges, or InputError when
    the sample cannot supply that many merges of pairs seen at least twice (a corpus too small for the vocabulary:
    merging pairs seen once only memorises the sample)."""
    import rustbpe

    settings.check()
    bar = tqdm(desc="merges", unit=" merges", disable=not progress, mininterval=1.0)
    handler = _MergeProgress(bar)
    logger = logging.getLogger("rustbpe")
    previous = (logger.level, logger.propagate)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        trainer = rustbpe.Tokenizer()
        trainer.train_from_iterator(iter(sample.texts), 256 + settings.merges, pattern=PATTERNS[settings.pattern])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
        bar.close()
    ranks = {bytes(token): rank for token, rank in trainer.get_mergeable_ranks()}
    made = len(ranks) - 256
    if made < settings.merges or handler.first_merge_seen_once is not None:
        usable = made if made < settings.merges else handler.first_merge_seen_once
        raise InputError(f"the corpus is too small for --vocab-size {settings.vocab_size:,}: its sample "
                         f"({sample.chars:,} characters, {len(sample.texts):,} documents) gives only about "
                         f"{usable:,} merges of pairs seen at least twice, {settings.merges:,} needed; use more "
                         f"text (--max-chars) or a vocabulary of at most about "
                         f"{256 + usable + len(SPECIAL_TOKENS):,}")
    return ranks


def trainer_info() -> dict:
    return {"name": "rustbpe", "version": version("rustbpe")}


def training_info(sample: Sample, settings: TrainSettings, source: str) -> dict:
    """What the tokenizer was trained on, for its metadata (no time stamps: the folder must be reproducible)."""
    return {"source": source, "documents_seen": sample.documents_seen, "chars_seen": sample.chars_seen,
            "documents": len(sample.texts), "chars": sample.chars,
            "bytes": sum(len(t.encode("utf-8", "surrogatepass")) for t in sample.texts),
            "max_chars": settings.max_chars, "seed": settings.seed, "sample_sha256": sample.sha256()}


def train_tokenizer(texts: Iterable[str], settings: TrainSettings, output, source: str, progress: bool = True):
    """Sample, train and write the tokenizer folder `output` (atomically); returns the loaded, verified folder."""
    settings.check()
    sample = sample_documents(texts, settings.max_chars, settings.seed, progress)
    if not sample.texts:
        raise InputError(f"{source}: no documents to train a tokenizer on")
    ranks = train_ranks(sample, settings, progress)
    write_tokenizer_folder(output, ranks, PATTERNS[settings.pattern], settings.pattern, trainer_info(),
                           training_info(sample, settings, source))
    return load_tokenizer_folder(output)
