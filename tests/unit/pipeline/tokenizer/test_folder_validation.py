"""load_tokenizer_folder validates everything before anything is built from it (issue 22): metadata of the wrong
type or range, ranks without the 256 byte tokens, duplicate or out-of-range ranks, non-UTF-8 ranks, a split pattern
that does not compile or drops text. Each variant re-hashes the files it changes into the metadata, as a hostile
editor would, so the check under test is reached rather than the sha256 check."""
import base64
import hashlib
import json
import shutil

import pytest

from gptstack.errors import InputError
from pipeline.tokenizer.folder import (EOT, META_FILE, RANKS_FILE, load_tokenizer_folder, ranks_to_text,
                                       write_tokenizer_folder)
from pipeline.tokenizer.train import PATTERNS

MERGES = [b"th", b"he", b"the", b" t", b" the", b"in", b"ing", "中".encode(), "文".encode()]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A real folder written by the project's writer: the 256 byte tokens, a few merges, GPT-4's pattern."""
    ranks = {bytes([byte]): byte for byte in range(256)}
    for token in MERGES:
        ranks[token] = len(ranks)
    return write_tokenizer_folder(tmp_path_factory.mktemp("tok") / "good", ranks, PATTERNS["gpt4"], "gpt4",
                                  {"name": "test"}, {"source": "tests"})


def variant(good, tmp_path, meta=None, ranks_text=None, files=None):
    """A copy of `good` with `meta(m)` applied to its metadata, `ranks_text` as its ranks file and `files`
    (name -> bytes) written, every data file's sha256 recorded again."""
    folder = tmp_path / "variant"
    shutil.copytree(good, folder)
    if ranks_text is not None:
        (folder / RANKS_FILE).write_bytes(ranks_text if isinstance(ranks_text, bytes) else ranks_text.encode())
    for name, data in (files or {}).items():
        (folder / name).write_bytes(data)
    document = json.loads((folder / META_FILE).read_text())
    document["files"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in document["files"]}
    if meta is not None:
        changed = meta(document)
        document = document if changed is None else changed
    (folder / META_FILE).write_text(json.dumps(document))
    return folder


def refusal(folder) -> str:
    with pytest.raises(InputError) as error:
        load_tokenizer_folder(folder)
    message = str(error.value)
    assert "\n" not in message and str(folder) in message
    return message


def set_key(key, value):
    return lambda meta: meta.__setitem__(key, value)


def good_ranks(good) -> list[str]:
    return (good / RANKS_FILE).read_text().splitlines()


def test_the_good_folder_loads_and_encodes_any_text(good):
    folder = load_tokenizer_folder(good)
    text = "the thing 中文 \x00\xff ünïcode 😀"
    assert folder.encoding().decode(folder.encoding().encode_ordinary(text)) == text


@pytest.mark.parametrize("change, expected", [
    (set_key("vocab_size", "273"), "vocab_size must be an integer, not '273'"),
    (set_key("vocab_size", 273.0), "vocab_size must be an integer, not 273.0"),
    (set_key("vocab_size", True), "vocab_size must be an integer, not True"),
    (set_key("vocab_size", 10**30), "vocab_size must be 257 to 65,536"),
    (set_key("special_tokens", [EOT]), "special_tokens must be an object"),
    (lambda m: m["special_tokens"].update({"<|im_start|>": "x"}), "special_tokens['<|im_start|>'] must be an integer"),
    (lambda m: m["special_tokens"].update({"<|im_start|>": 3}), "special_tokens['<|im_start|>'] must be 256 to"),
    (lambda m: m["special_tokens"].update({"<|im_start|>": m["eot_token"]}), "must hold the last ids"),
    (set_key("eot_token", 265.0), "eot_token must be an integer, not 265.0"),
    (lambda m: m.__setitem__("eot_token", m["eot_token"] + 1), "is not the id of <|endoftext|>"),
    (set_key("name", 5), "name must be a string, not 5"),
    (set_key("name", ""), "name is empty"),
    (lambda m: m.pop("name") and None, "name is missing"),
    (lambda m: m.pop("pattern") and None, "pattern is missing"),
    (set_key("pattern", 7), "pattern must be a string, not 7"),
    (set_key("pattern_name", ["gpt4"]), "pattern_name must be a string"),
    (set_key("files", []), "files must be an object, not []"),
    (set_key("training", "x"), "training must be an object"),
    (set_key("version", 2), "version 2; this code reads version 1"),
    (set_key("format", "other"), "format is 'other'"),
    (lambda m: [m], "is a list in JSON, not an object"),
    (lambda m: m["training"].update(deep="DEEP"), "nested too deeply"),
])
def test_metadata_of_the_wrong_type_or_range_is_one_line(good, tmp_path, change, expected):
    folder = variant(good, tmp_path, meta=change)
    if "nested" in expected:  # 100,000 levels, which json.dumps itself could not write
        path = folder / META_FILE
        path.write_text(path.read_text().replace('"DEEP"', "[" * 100_000 + "]" * 100_000))
    assert expected in refusal(folder)


def test_ranks_without_a_byte_token_are_refused_on_load(good, tmp_path):
    """Accepted before, then a Rust panic at the first text holding that byte (in prepare: after every stage)."""
    tokens = [line.split()[0] for line in good_ranks(good) if base64.b64decode(line.split()[0]) != b"a"]
    text = "".join(f"{token} {rank}\n" for rank, token in enumerate(tokens))

    def shift(meta):  # the metadata stays consistent: one id fewer everywhere
        meta["vocab_size"] -= 1
        meta["eot_token"] -= 1
        meta["special_tokens"] = {name: token_id - 1 for name, token_id in meta["special_tokens"].items()}

    message = refusal(variant(good, tmp_path, meta=shift, ranks_text=text))
    assert "1 of the 256 single-byte tokens are missing (0x61)" in message


@pytest.mark.parametrize("edit, expected", [
    (lambda lines: lines[:-1] + [lines[-2].split()[0] + " " + lines[-1].split()[1]], "is there twice (also line"),
    (lambda lines: [lines[0].replace(" 0", " -1")] + lines[1:], "ranks are not 0..264 each once"),
    (lambda lines: [lines[0].replace(" 0", " 99999999999999999999")] + lines[1:], "ranks are not 0..264 each once"),
    (lambda lines: lines + ["QQ== 265 4"], ":266: not a '<base64 token> <rank>' line"),
    (lambda lines: lines + ["not*base64 265"], ":266: not a '<base64 token> <rank>' line"),
    (lambda lines: lines + [" 265"], ":266: not a '<base64 token> <rank>' line"),
    (lambda lines: [], "256 of the 256 single-byte tokens are missing"),
])
def test_ranks_files_that_are_wrong_are_one_line(good, tmp_path, edit, expected):
    text = "".join(line + "\n" for line in edit(good_ranks(good)))
    assert expected in refusal(variant(good, tmp_path, ranks_text=text))


def test_non_utf8_ranks_and_counts_that_disagree(good, tmp_path):
    raw = (good / RANKS_FILE).read_bytes() + b"\xff\xfe 265\n"
    assert "not UTF-8 text" in refusal(variant(good, tmp_path, ranks_text=raw))
    shutil.rmtree(tmp_path / "variant")
    extra = ranks_to_text({bytes([b]): b for b in range(256)} | {token: 256 + i for i, token in enumerate(MERGES)}
                          | {b"xyz": 256 + len(MERGES)})
    assert "ranks + 8 special tokens is not vocab_size" in refusal(variant(good, tmp_path, ranks_text=extra))


@pytest.mark.parametrize("pattern, expected", [
    ("(unclosed", "pattern is not a usable split pattern (Parsing error"),
    (r"\p{Nope}", "pattern is not a usable split pattern"),
    ("", "pattern matches the empty string"),  # tiktoken panics on an empty piece
    ("a*", "pattern matches the empty string"),
    (r"\p{L}+", "pattern does not match all of a test text"),  # digits and spaces would vanish from every document
    ("x" * 20_000, "pattern is 20,000 long"),
])
def test_split_patterns_that_cannot_encode_every_text_are_refused(good, tmp_path, pattern, expected):
    assert expected in refusal(variant(good, tmp_path, meta=set_key("pattern", pattern)))


def test_hugging_face_config_must_be_an_object_and_files_bounded(good, tmp_path):
    assert "Hugging Face tokenizer config is a list in JSON" in refusal(
        variant(good, tmp_path, files={"tokenizer_config.json": b"[]"}))
    shutil.rmtree(tmp_path / "variant")
    folder = variant(good, tmp_path)
    with open(folder / "tokenizer.json", "r+b") as file:  # sparse: 3 GiB announced, nothing on the disk
        file.truncate(3 << 30)
    assert "tokenizer.json is over 67,108,864 bytes" in refusal(folder)  # refused before hashing 3 GiB
