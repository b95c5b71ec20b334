"""The tokenize stage's block encoder (pipeline/tokens/block_encoder.py): tiktoken's encode_ordinary ids, in order,
whatever the number of threads."""
import numpy as np
import pytest

from pipeline.tokenizer import get_tokenizer
from pipeline.tokens.block_encoder import encode_stream


@pytest.mark.parametrize("threads", [1, 3])
def test_block_encoder_gives_tiktokens_ids_in_order(threads):
    encoding = get_tokenizer("gpt2").encoding
    texts = ["Hello world", "", "a <|endoftext|> b", "中文分词 \ud800 lone surrogate", "word " * 3000] * 40
    blocks = list(encode_stream(encoding, iter(texts), threads, block_chars=1000))
    tokens = np.concatenate([b[0] for b in blocks])
    lengths = np.concatenate([b[1] for b in blocks])
    expected = [ids + [encoding.eot_token] for ids in map(encoding.encode_ordinary, texts)]
    assert lengths.tolist() == [len(e) for e in expected]
    assert tokens.dtype == np.uint16 and tokens.tolist() == [t for e in expected for t in e]
