"""gptstack/formats.py, the checks every file-format loader shares: a bounded JSON read whose every failure is one line
(deep nesting, bad UTF-8, a FIFO, an int of 5,000 digits), typed and ranged fields, and the one range of seeds
(issue 22)."""
import argparse
import json
import os

import pytest

from gptstack.errors import GPTStackError
from gptstack.formats import MAX_SEED, check_value, field, read_json, read_json_object, seed_argument


class Bad(GPTStackError):
    pass


def refused(function, *args, **kwargs) -> str:
    with pytest.raises(Bad) as error:
        function(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message and len(message) < 400
    return message


@pytest.mark.parametrize("content, expected", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),  # Python's parser raises RecursionError here
    ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    ('{"n": ' + "9" * 5000 + "}", "not valid JSON"),  # past Python's int digit limit: a ValueError
    ('{"a": 1', "not valid JSON"),
    ("", "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_unreadable_json_is_one_line_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "x.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    message = refused(read_json, path, Bad, "manifest")
    assert message.startswith(f"{path}: manifest ") and expected in message


def test_size_special_files_and_top_level_type(tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"pad": "x" * 2000}))
    assert "over 1,000 bytes" in refused(read_json, big, Bad, max_bytes=1000)
    assert read_json(big, Bad)["pad"] == "x" * 2000
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert "not a plain file" in refused(read_json, fifo, Bad)  # opened without waiting for a writer, then refused
    assert "cannot read" in refused(read_json, tmp_path / "absent.json", Bad)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    assert "is a list in JSON, not an object" in refused(read_json_object, listed, Bad)
    nan = tmp_path / "nan.json"
    nan.write_text('{"tokens": NaN}')
    assert read_json(nan, Bad)["tokens"] != read_json(nan, Bad)["tokens"]  # NaN, as Python reads its own files
    assert "NaN is not a JSON number" in refused(read_json, nan, Bad, allow_nan=False)


@pytest.mark.parametrize("value, kind, bounds, expected", [
    (True, int, {}, "must be an integer, not True"),  # JSON's true is not a count
    (3.0, int, {}, "must be an integer, not 3.0"),
    ("3", int, {}, "must be an integer, not '3'"),
    (-1, int, {"low": 0, "high": 10}, "must be 0 to 10, not -1"),
    (10**30, int, {"high": 100}, "must be at most 100, not 1000000"),
    (float("nan"), float, {}, "must be a number, not nan"),
    (float("inf"), float, {}, "must be a number, not inf"),
    ("x" * 300, str, {"max_length": 255}, "is 300 long, more than the 255 allowed"),
    (None, (str, dict), {}, "must be a string or an object, not None"),
])
def test_check_value_refuses_wrong_types_and_ranges(value, kind, bounds, expected):
    assert expected in refused(check_value, value, kind, "f.json: x", Bad, **bounds)


def test_field_names_the_record_and_key():
    entry = {"tokens": 5, "file": "a.bin"}
    assert field(entry, "tokens", int, "f.json: shards[3].", Bad, low=0) == 5
    assert field(entry, "sha256", str, "f.json: shards[3].", Bad, default=None) is None
    assert refused(field, entry, "sha256", str, "f.json: shards[3].", Bad) == "f.json: shards[3].sha256 is missing"
    assert refused(field, entry, "file", int, "f.json: ", Bad) == "f.json: file must be an integer, not 'a.bin'"


def test_seeds_are_what_numpy_and_torch_both_accept():
    import numpy as np
    import torch

    for seed in (0, 1337, MAX_SEED):
        assert seed_argument(str(seed)) == seed
        np.random.default_rng(seed)
        torch.manual_seed(seed)
    for text in ("-1", str(MAX_SEED + 1), str(2**70), "1e3", "abc"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_argument(text)
    with pytest.raises(ValueError):  # why 0 is the floor: numpy refuses negative seeds
        np.random.default_rng(-1)
    with pytest.raises((ValueError, RuntimeError)):  # and torch refuses seeds past 2**64-1
        torch.manual_seed(2**70)
