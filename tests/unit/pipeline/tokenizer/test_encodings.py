"""Encodings the shards can hold (pipeline/tokenizer/encodings.py): every id must fit the shards' uint16 tokens."""
import pytest
import tiktoken

from gptstack.errors import InputError
from pipeline.tokenizer import get_tokenizer
from pipeline.tokenizer.encodings import check_fits_uint16


def test_tokenizer_beyond_uint16_is_refused():
    gpt2 = get_tokenizer("gpt2").encoding
    check_fits_uint16(gpt2)  # 50,257 ids fit
    big = tiktoken.Encoding(name="gpt2-plus", pat_str=gpt2._pat_str, mergeable_ranks=gpt2._mergeable_ranks,
                            special_tokens={"<|endoftext|>": 50256, "<|extra|>": 70000})
    with pytest.raises(InputError, match="'gpt2-plus' has 70,001 ids.*up to 65,535"):
        check_fits_uint16(big)
