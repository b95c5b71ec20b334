"""The byte counts behind val_bpb (model/bits_per_byte.py): a text's tokens add up to its UTF-8 bytes."""
from model.bits_per_byte import token_byte_lengths
from pipeline.tokenizer import get_tokenizer


def test_token_bytes_add_up_to_the_text():
    encoding = get_tokenizer("gpt2").encoding
    lengths = token_byte_lengths(encoding, 50304)
    text = "Bits per byte: 每个字节多少比特 🙂"
    assert int(lengths[encoding.encode_ordinary(text)].sum()) == len(text.encode())
    assert lengths[encoding.eot_token] == 0 and lengths[50257:].sum() == 0  # specials and padding are not text
