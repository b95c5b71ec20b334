"""The HellaSwag file is validated line by line when a run starts (load_hellaswag, issue 22): malformed lines, wrong
types and labels out of range are one ConfigError line naming the file and the line, instead of a TypeError at the
first evaluation hours in. The real validation file (../shared/data/eval) loads whole."""
import json

import pytest

from model.config import ConfigError
from model.evaluation import load_hellaswag

GOOD = {"ctx": "A man is sitting on a roof. he", "endings": ["a", "b", "c", "d"], "label": 3}


def file_with(tmp_path, second: bytes):
    path = tmp_path / "hellaswag_val.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + second + b"\n")
    return path


@pytest.mark.parametrize("record, expected", [
    ({**GOOD, "ctx": 5}, "ctx must be a string, not 5"),
    ({**GOOD, "endings": "abcd"}, "endings must be a list, not 'abcd'"),
    ({**GOOD, "endings": ["a", "b", "c"]}, "expected 4 endings, found 3"),
    ({**GOOD, "endings": ["a", "b", None, "d"]}, "endings[2] must be a string, not None"),
    ({**GOOD, "label": 4}, "label must be 0, 1, 2 or 3, not 4"),
    ({**GOOD, "label": -1}, "label must be 0, 1, 2 or 3, not -1"),
    ({**GOOD, "label": "x"}, "label must be 0, 1, 2 or 3, not 'x'"),
    ({**GOOD, "label": 2.0}, "label must be an integer or a string, not 2.0"),
    ({**GOOD, "label": True}, "label must be an integer or a string, not True"),
    ({k: v for k, v in GOOD.items() if k != "endings"}, "endings is missing"),
    ([GOOD], "the record must be an object"),
])
def test_records_of_the_wrong_shape_name_file_and_line(tmp_path, record, expected):
    path = file_with(tmp_path, json.dumps(record).encode())
    with pytest.raises(ConfigError) as error:
        load_hellaswag(path)
    assert str(error.value).startswith(f"{path}:2: ") and expected in str(error.value)


@pytest.mark.parametrize("line, expected", [
    (b'{"ctx": "cut', "not a HellaSwag record"),
    (b"[" * 100_000, "nested too deeply"),  # a RecursionError in Python's parser
    (b'{"ctx": "a", "endings": ["a", "b", "c", "d"], "label": 1e400}', "not inf"),
    (b"\xff\xfe", "not UTF-8 text"),
])
def test_malformed_lines_are_one_line(tmp_path, line, expected):
    path = file_with(tmp_path, line)
    with pytest.raises(ConfigError) as error:
        load_hellaswag(path)
    assert str(error.value).startswith(f"{path}:2: ") and expected in str(error.value)
    assert "\n" not in str(error.value)


def test_label_as_a_digit_string_and_the_real_file(tmp_path, shared_data):
    examples = load_hellaswag(file_with(tmp_path, json.dumps({**GOOD, "label": "1"}).encode()))
    assert [e["label"] for e in examples] == [3, 1]  # Hugging Face's copy writes labels as strings
    real = load_hellaswag(shared_data / "eval" / "hellaswag_val.jsonl")
    assert len(real) == 10042 and all(isinstance(e["label"], int) for e in real)
