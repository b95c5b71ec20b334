"""The checks every loader of a file format uses before it builds anything from the file (issue 22: "every file format
we read is validated on load, in one place per format").

A loader reads its file with `read_json` (a size bound, UTF-8, JSON, nesting too deep for Python's parser said in
one line instead of a RecursionError) and then takes each field with `field` (its type and range), so that a file
with a wrong type, a missing key or an absurd number is one error naming the file and the key, never a KeyError or
TypeError further on. `bool` is never an int here (JSON's `true` is not a count).
"""
import json
import math
import os
import stat
from pathlib import Path
from typing import Any, Union

from gptstack.errors import GPTStackError

MAX_JSON_BYTES = 64 * 2**20  # far above any metadata file we write (a manifest of 10,000 shards is ~2 MB)
_MISSING = object()


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters, for messages that must stay one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_text(path: Union[str, Path], error: type = GPTStackError, what: str = "", max_bytes: int = MAX_JSON_BYTES
              ) -> str:
    """The UTF-8 text of the plain file at `path`, at most `max_bytes`; anything else is `error("<path>: <what> ...")`
    in one line (a FIFO, device or folder is refused, never waited on or read)."""
    path = Path(path)
    what = f"{what} " if what else ""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO is opened and refused, not waited on
    except OSError as e:
        raise error(f"{path}: cannot read {what}({e.strerror or e})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which raises IsADirectoryError for a folder
        os.close(fd)
        raise error(f"{path}: {what}is not a plain file")
    with os.fdopen(fd, "rb") as file:
        try:
            data = file.read(max_bytes + 1)
        except OSError as e:
            raise error(f"{path}: cannot read {what}({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise error(f"{path}: {what}file is over {max_bytes:,} bytes; not one this code wrote")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: {what}is not UTF-8 text (byte {e.start})") from None
    return text


def read_json(path: Union[str, Path], error: type = GPTStackError, what: str = "", max_bytes: int = MAX_JSON_BYTES,
              allow_nan: bool = True) -> Any:
    """The JSON value of the file at `path`; anything unreadable is `error("<path>: <what> ...")` in one line.

    Bounded: a file over `max_bytes` is refused before it is read. Python's parser recurses per nesting level, so a
    document nested 100,000 deep raises RecursionError; that is said as such. `allow_nan=False` refuses NaN and
    Infinity, which Python writes and reads but which are not JSON."""
    path = Path(path)
    text = read_text(path, error, what, max_bytes)
    what = f"{what} " if what else ""

    def refuse_constant(name: str):
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(text, **({} if allow_nan else {"parse_constant": refuse_constant}))
    except RecursionError:
        raise error(f"{path}: {what}is nested too deeply to be read (not one this code wrote)") from None
    except ValueError as e:  # JSONDecodeError, and Python's limit on the digits of an int
        raise error(f"{path}: {what}is not valid JSON ({' '.join(str(e).split())[:120]})") from None


def read_json_object(path: Union[str, Path], error: type = GPTStackError, what: str = "", **kwargs) -> dict:
    """`read_json` of a file whose top level must be an object."""
    value = read_json(path, error, what, **kwargs)
    if not isinstance(value, dict):
        raise error(f"{path}: {what + ' ' if what else ''}is {_type_name(type(value))} in JSON, not an object")
    return value


def _type_name(kind) -> str:
    names = {int: "an integer", float: "a number", str: "a string", dict: "an object", list: "a list",
             bool: "true or false", type(None): "null"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _is(value: Any, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    if float in kinds and isinstance(value, (int, float)):
        return not isinstance(value, float) or math.isfinite(value)
    return isinstance(value, kinds)


def check_value(value: Any, kind, where: str, error: type = GPTStackError, low=None, high=None,
                max_length: int | None = None) -> Any:
    """`value` if it is of `kind` (a type or a tuple of types) and within [low, high] (numbers) or at most
    `max_length` long (strings, lists, objects); else `error` naming `where` (e.g. "<file>: shards[3].tokens")."""
    if not _is(value, kind):
        raise error(f"{where} must be {_type_name(kind)}, not {short(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{low:,} to {high:,}" if low is not None and high is not None else (
                f"at least {low:,}" if low is not None else f"at most {high:,}")
            raise error(f"{where} must be {bounds}, not {short(value)}")
    if max_length is not None and isinstance(value, (str, list, dict)) and len(value) > max_length:
        raise error(f"{where} is {len(value):,} long, more than the {max_length:,} allowed")
    return value


def field(record: dict, key: str, kind, where: str, error: type = GPTStackError, *, default: Any = _MISSING,
          **bounds) -> Any:
    """`record[key]` checked by `check_value`; a missing key is an error unless a `default` is given. `where` is the
    prefix that names the record in messages: "<file>: " or "<file>: shards[3].", which give "<file>: shards[3].tokens
    must be an integer, not '104'"."""
    if key not in record:
        if default is not _MISSING:
            return default
        raise error(f"{where}{key} is missing")
    return check_value(record[key], kind, f"{where}{key}", error, **bounds)


# numpy's default_rng takes any int >= 0 and torch.manual_seed -2**63..2**64-1; 0..2**63-1 is what both take, and it
# fits a signed 64-bit field (the tokenizer sample keys its hash with the seed's 8 bytes).
MAX_SEED = 2**63 - 1


def seed_argument(text: str) -> int:
    """argparse `type=` of every --seed: an integer in 0..MAX_SEED, else the parser's one-line error."""
    import argparse

    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{short(text)} is not an integer") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{short(seed)} is outside 0..{MAX_SEED} (2**63-1), the seeds numpy and "
                                         "torch both accept")
    return seed
