"""A trained tokenizer as one self-contained folder, written atomically and verified when loaded.

    tokenizers/NAME/
      tokenizer.tiktoken        the BPE ranks in tiktoken's own format: "<base64 of the token's bytes> <rank>" per
                                line (tiktoken.load.load_tiktoken_bpe reads it); the rank is the token id
      tokenizer.json            the same tokenizer for Hugging Face `tokenizers` / transformers
      tokenizer_config.json     what `AutoTokenizer.from_pretrained(folder)` needs besides tokenizer.json
      gptstack_tokenizer.json   metadata, written last: vocabulary size, end-of-text id, split pattern, special tokens,
                                what it was trained on, and the sha256 of each file above

The ranks file is the source of truth; tokenizer.json is derived from it so that Hugging Face gives the same ids as
tiktoken (tests/test_tokenizer_train.py checks it on held-out English and Chinese text). The metadata holds no
time stamp, so the same training input and settings give the same folder byte for byte. Its own sha256 identifies
the whole tokenizer (it covers the other files' hashes): manifests and checkpoints record it.
"""
import base64
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

import tiktoken

from gptstack.errors import InputError
from gptstack.files import atomic_write, flat_folder_files, fsync_dir
from gptstack.formats import check_value, field, read_json_object, read_text, short

FORMAT = "gptstack-tokenizer"
FORMAT_VERSION = 1
RANKS_FILE = "tokenizer.tiktoken"
HF_FILE = "tokenizer.json"
HF_CONFIG_FILE = "tokenizer_config.json"
META_FILE = "gptstack_tokenizer.json"
DATA_FILES = (RANKS_FILE, HF_FILE, HF_CONFIG_FILE)
EOT = "<|endoftext|>"
# Ids after the BPE ranks: the document separator first, then ChatML's turn markers (the format Qwen and MiniMind
# fine-tune with) and spare ids, so a later chat or tool format needs no new embedding rows.
SPECIAL_TOKENS = (EOT, "<|im_start|>", "<|im_end|>") + tuple(f"<|reserved_{i}|>" for i in range(5))
MAX_IDS = 65536  # uint16 shards: ids 0..65535
MAX_META_BYTES = 1 << 20  # what we write is ~1 KB
MAX_DATA_BYTES = 64 << 20  # each data file: what we write for 50,000 ids is 0.8 MB (ranks) and 2.4 MB (tokenizer.json)
# Text that any split pattern must give back whole: a pattern that does not match some of it (or matches nothing,
# which panics in tiktoken's Rust) would drop text from every document without a word.
PATTERN_PROBE = ("Hello, World! It's 3.14 or 1,000,000\n\n\tdon't  stop   \r\n中文分词：我们今天去公园。"
                 "Ünïcödé 😀 \x00\x7f" + "".join(map(chr, range(32, 127))))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ranks_to_text(ranks: dict[bytes, int]) -> str:
    return "".join(f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in sorted(ranks.items(),
                                                                                              key=lambda kv: kv[1]))


def ranks_from_text(text: str, where: str) -> dict[bytes, int]:
    """The ranks of a ranks file's text, checked: every line "<base64 token> <rank>", no token twice, ranks 0..n-1
    each once, at most MAX_IDS of them, and every one of the 256 single bytes a token (else text holding a missing
    byte cannot be encoded: tiktoken panics)."""
    ranks, lines = {}, {}
    for number, line in enumerate(text.splitlines(), 1):
        try:
            token_text, rank_text = line.split()
            token, rank = base64.b64decode(token_text, validate=True), int(rank_text)
        except ValueError:  # binascii.Error is one
            raise InputError(f"{where}:{number}: not a '<base64 token> <rank>' line") from None
        if not token:
            raise InputError(f"{where}:{number}: the token is empty")
        if token in ranks:
            raise InputError(f"{where}:{number}: token {short(token)} is there twice (also line {lines[token]})")
        if len(ranks) == MAX_IDS:
            raise InputError(f"{where}: more than {MAX_IDS:,} tokens, which uint16 shards cannot hold")
        ranks[token], lines[token] = rank, number
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise InputError(f"{where}: ranks are not 0..{len(ranks) - 1} each once")
    missing = [byte for byte in range(256) if bytes([byte]) not in ranks]
    if missing:
        listed = ", ".join(f"0x{byte:02x}" for byte in missing[:8]) + (", ..." if len(missing) > 8 else "")
        raise InputError(f"{where}: {len(missing)} of the 256 single-byte tokens are missing ({listed}); every byte "
                         "must be a token, or text that holds it cannot be encoded")
    return ranks


def read_ranks(path: Path) -> dict[bytes, int]:
    """`ranks_from_text` of a ranks file, its size bounded and its text UTF-8 (base64 is ASCII)."""
    return ranks_from_text(read_text(path, InputError, "ranks file", MAX_DATA_BYTES), str(path))


def check_meta(meta, where: str) -> dict:
    """`meta` (gptstack_tokenizer.json) if each field has its type and range; else an InputError naming `where` and
    the field. The special tokens take the last ids, after the ranks; the end-of-text token is one of them."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{where}: format is {short(meta.get('format') if isinstance(meta, dict) else meta)}, "
                         f"not {FORMAT!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise InputError(f"{where}: version {short(meta.get('version'))}; this code reads version {FORMAT_VERSION}")
    at = f"{where}: "
    for key in ("name", "pattern_name"):
        if not field(meta, key, str, at, InputError, max_length=255):
            raise InputError(f"{at}{key} is empty")
    field(meta, "pattern", str, at, InputError, max_length=10_000)
    vocab_size = field(meta, "vocab_size", int, at, InputError, low=256 + 1, high=MAX_IDS)
    eot = field(meta, "eot_token", int, at, InputError, low=0, high=vocab_size - 1)
    specials = field(meta, "special_tokens", dict, at, InputError)
    for text, token_id in specials.items():
        check_value(token_id, int, f"{at}special_tokens[{short(text)}]", InputError, low=256, high=vocab_size - 1)
        if not text or len(text) > 256:
            raise InputError(f"{at}special_tokens holds a token of {len(text)} characters")
    if specials.get(EOT) != eot:
        raise InputError(f"{at}eot_token {eot} is not the id of {EOT} in special_tokens ({specials.get(EOT)})")
    if sorted(specials.values()) != list(range(vocab_size - len(specials), vocab_size)):
        raise InputError(f"{at}special_tokens must hold the last ids up to vocab_size {vocab_size:,}, each once")
    field(meta, "trainer", dict, at, InputError)
    field(meta, "training", dict, at, InputError)
    files = field(meta, "files", dict, at, InputError)
    for name in DATA_FILES:
        digest = field(files, name, str, f"{at}files.", InputError)
        if len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise InputError(f"{at}files.{name} {short(digest)} is not a SHA-256 in hex")
    return meta


def check_pattern(pattern: str, where: str) -> None:
    """The split pattern compiles in tiktoken's own regex engine, never matches the empty string (tiktoken panics on
    an empty piece) and gives back every character of PATTERN_PROBE."""
    empty = 256  # the probe's id for an empty piece, so that one is seen instead of panicking
    ranks = {bytes([byte]): byte for byte in range(256)} | {b"": empty}
    try:
        probe = tiktoken.Encoding("pattern-check", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
        ids = probe.encode_ordinary(PATTERN_PROBE)
    except BaseException as e:  # a pattern error is a ValueError; a Rust panic is a BaseException
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise InputError(f"{where}: pattern is not a usable split pattern ({' '.join(str(e).split())[:100]})") from None
    if empty in ids:
        raise InputError(f"{where}: pattern matches the empty string, which tiktoken cannot encode")
    if probe.decode(ids) != PATTERN_PROBE:
        raise InputError(f"{where}: pattern does not match all of a test text: it would drop text from documents")


# ------------------------------------------------------------------------------------------------- Hugging Face
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map, which byte-level BPE in Hugging Face `tokenizers` uses for tokens."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def merges_from_ranks(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Every split of every token into two tokens, ordered by the rank of the token they make.

    tiktoken merges the adjacent pair whose concatenation has the lowest rank, whichever split made that token in
    training; listing all splits in that order makes Hugging Face's merge-list BPE choose the same pairs (the
    conversion transformers uses for Llama 3's tiktoken files)."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        splits = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks]
        merges.extend(sorted(splits, key=lambda pair: (ranks[pair[0]], ranks[pair[1]])))
    return merges


def hf_tokenizer_json(ranks: dict[bytes, int], pattern: str, special_tokens: dict[str, int]) -> str:
    """tokenizer.json for `tokenizers`: split by `pattern`, byte-level BPE over the ranks, specials after them."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    to_text = bytes_to_unicode()
    as_text = lambda token: "".join(to_text[byte] for byte in token)  # noqa: E731
    model = models.BPE(vocab={as_text(token): rank for token, rank in ranks.items()},
                       merges=[(as_text(a), as_text(b)) for a, b in merges_from_ranks(ranks)],
                       ignore_merges=True)  # a whole piece that is a token is that token, as in tiktoken
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    for text in sorted(special_tokens, key=special_tokens.get):  # added in id order: ids len(ranks), +1, ...
        tokenizer.add_special_tokens([AddedToken(text, special=True, normalized=False)])
    for text, token_id in special_tokens.items():
        if tokenizer.token_to_id(text) != token_id:
            raise AssertionError(f"special token {text} got id {tokenizer.token_to_id(text)}, not {token_id}")
    return tokenizer.to_str()


def hf_tokenizer_config(eot: str) -> str:
    return json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": eot, "eos_token": eot,
                       "unk_token": None, "add_bos_token": False, "add_eos_token": False,
                       "clean_up_tokenization_spaces": False, "model_max_length": 1_000_000_000}, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------------- writing
def write_tokenizer_folder(folder, ranks: dict[bytes, int], pattern: str, pattern_name: str, trainer: dict,
                           training: dict) -> Path:
    """Write the folder in a temporary sibling and rename it into place: it appears complete or not at all.

    Refuses an existing `folder` (shards and checkpoints identify a tokenizer by its files; replacing one in place
    would silently change what they point to)."""
    folder = Path(folder)
    if folder.exists():
        raise InputError(f"--output {folder}: already exists; choose another name or delete it")
    special_tokens = {text: len(ranks) + i for i, text in enumerate(SPECIAL_TOKENS)}
    vocab_size = len(ranks) + len(special_tokens)
    if vocab_size > MAX_IDS:
        raise InputError(f"{vocab_size:,} ids do not fit uint16 shards (at most {MAX_IDS:,})")
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = folder.with_name(f".{folder.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    temp.mkdir()
    try:
        atomic_write(temp / RANKS_FILE, ranks_to_text(ranks))
        atomic_write(temp / HF_FILE, hf_tokenizer_json(ranks, pattern, special_tokens))
        atomic_write(temp / HF_CONFIG_FILE, hf_tokenizer_config(EOT))
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "name": folder.name, "vocab_size": vocab_size,
                "eot_token": special_tokens[EOT], "pattern_name": pattern_name, "pattern": pattern,
                "special_tokens": special_tokens, "trainer": trainer, "training": training,
                "files": {name: file_sha256(temp / name) for name in DATA_FILES}}
        atomic_write(temp / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        os.rename(temp, folder)  # fails rather than merge if `folder` appeared meanwhile
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return folder


# ---------------------------------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class TokenizerFolder:
    path: Path
    meta: dict
    sha256: str  # of the metadata file, which names every other file's sha256: the tokenizer's identity
    ranks: dict = dataclass_field(default_factory=dict, compare=False, repr=False)  # checked on load

    @property
    def vocab_size(self) -> int:
        return self.meta["vocab_size"]

    @property
    def eot_token(self) -> int:
        return self.meta["eot_token"]

    def encoding(self) -> tiktoken.Encoding:
        return tiktoken.Encoding(name=self.meta["name"], pat_str=self.meta["pattern"], mergeable_ranks=self.ranks,
                                 special_tokens=self.meta["special_tokens"], explicit_n_vocab=self.vocab_size)


def is_tokenizer_folder(path) -> bool:
    return (Path(path) / META_FILE).is_file()


def load_tokenizer_folder(path) -> TokenizerFolder:
    """Read and verify a tokenizer folder; anything missing, altered or inconsistent raises a one-line InputError."""
    path = Path(path)
    meta_path = path / META_FILE
    if not path.is_dir():
        raise InputError(f"tokenizer {path}: no such folder")
    if not meta_path.is_file():
        raise InputError(f"tokenizer {path}: not a tokenizer folder (no {META_FILE}; make one with "
                         "`python -m pipeline.tokenizer train`)")
    flat_folder_files(path, f"tokenizer {path}", InputError)  # no link is followed, nothing but plain files is read
    # Everything is checked here, before anything is built from it: types and ranges, the files against their
    # sha256, the ranks and their byte tokens, the split pattern. A tokenizer that loads encodes any text.
    meta = check_meta(read_json_object(meta_path, InputError, "tokenizer metadata", max_bytes=MAX_META_BYTES),
                      str(meta_path))
    for name in DATA_FILES:
        if not (path / name).is_file():
            raise InputError(f"tokenizer {path}: {name} is missing")
        if (path / name).stat().st_size > MAX_DATA_BYTES:  # refused before hashing it (a sparse file of terabytes)
            raise InputError(f"tokenizer {path}: {name} is over {MAX_DATA_BYTES:,} bytes; not one this code wrote")
        if file_sha256(path / name) != meta["files"][name]:
            raise InputError(f"tokenizer {path}: {name} has changed (its sha256 differs from {META_FILE})")
    ranks = read_ranks(path / RANKS_FILE)
    if len(ranks) + len(meta["special_tokens"]) != meta["vocab_size"]:
        raise InputError(f"tokenizer {path}: {len(ranks):,} ranks + {len(meta['special_tokens'])} special tokens is "
                         f"not vocab_size {meta['vocab_size']:,}")
    check_pattern(meta["pattern"], str(meta_path))
    read_json_object(path / HF_CONFIG_FILE, InputError, "Hugging Face tokenizer config", max_bytes=MAX_META_BYTES)
    return TokenizerFolder(path, meta, file_sha256(meta_path), ranks)
