"""gptstack/files.py's one way to copy and open for writing: no symbolic link is followed, no FIFO or device is read or
written as a plain file; and its one bound on what a record may decode to (issue 22)."""
import io
import os
import threading

import pytest

from gptstack.errors import GPTStackError
from gptstack.files import (bounded_lines, copy_at_most, copy_file, copy_flat_folder, flat_folder_files,
                            open_for_write, read_at_most)


class Refused(GPTStackError):
    pass


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "users-file.txt"
    path.write_text("the user's own text")
    return path


def no_hang(function, *args):
    """Run `function`; fail instead of blocking forever (opening a FIFO waits for its other end)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), f"{function.__name__} blocked on a FIFO"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.mark.parametrize("mode", ["w", "a", "wb", "ab"])
def test_open_for_write_refuses_a_link_and_leaves_its_target_alone(tmp_path, target, mode):
    link = tmp_path / "metrics.jsonl"
    os.symlink(target, link)
    with pytest.raises(Refused, match="metrics.jsonl is a symbolic link"):
        open_for_write(link, mode, error=Refused)
    assert target.read_text() == "the user's own text"
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "nowhere", dangling)
    with pytest.raises(Refused, match="symbolic link"):
        open_for_write(dangling, mode, error=Refused)
    assert not (tmp_path / "nowhere").exists()


def test_open_for_write_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(Refused, match="pipe is a FIFO"):
        no_hang(open_for_write, tmp_path / "pipe", "a", "", Refused)


def test_open_for_write_writes_and_appends_plain_files(tmp_path):
    path = tmp_path / "log.jsonl"
    with open_for_write(path, "a") as f:
        f.write("1\n")
    with open_for_write(path, "a") as f:
        f.write("2\n")
    assert path.read_text() == "1\n2\n"
    with open_for_write(path, "wb") as f:
        f.write(b"new\n")
    assert path.read_bytes() == b"new\n"


@pytest.mark.parametrize("kind", ["link to a file", "link to /dev/zero", "FIFO"])
def test_copy_file_refuses_a_source_that_is_no_plain_file(tmp_path, target, kind):
    source = tmp_path / "source"
    if kind == "FIFO":
        os.mkfifo(source)
    else:
        os.symlink(target if kind == "link to a file" else "/dev/zero", source)
    with pytest.raises(Refused, match="source is a"):
        no_hang(copy_file, source, tmp_path / "copy", "folder", Refused)
    assert not (tmp_path / "copy").exists()


def test_copy_file_replaces_a_link_at_the_destination(tmp_path, target):
    (tmp_path / "source").write_text("new content")
    os.symlink(target, tmp_path / "copy")
    copy_file(tmp_path / "source", tmp_path / "copy")
    assert not (tmp_path / "copy").is_symlink() and (tmp_path / "copy").read_text() == "new content"
    assert target.read_text() == "the user's own text"


def test_flat_folder_copy_checks_every_entry_before_copying_any(tmp_path, target):
    source = tmp_path / "flat"
    source.mkdir()
    (source / "a.txt").write_text("a")
    (source / "b.txt").write_text("b")
    assert [p.name for p in flat_folder_files(source, "flat")] == ["a.txt", "b.txt"]
    copy = copy_flat_folder(source, tmp_path / "copy")
    assert sorted(p.name for p in copy.iterdir()) == ["a.txt", "b.txt"] and (copy / "b.txt").read_text() == "b"
    os.symlink(target, source / "z.txt")  # sorted last: refused before a.txt and b.txt are copied
    with pytest.raises(Refused, match="z.txt is a symbolic link"):
        copy_flat_folder(source, tmp_path / "copy2", "flat", Refused)
    assert not (tmp_path / "copy2").exists()
    (source / "z.txt").unlink()
    (source / "sub").mkdir()
    with pytest.raises(Refused, match="sub is a sub-folder"):
        flat_folder_files(source, "flat", Refused)


def test_read_at_most_and_bounded_lines_never_hold_more_than_the_bound():
    assert read_at_most(io.BytesIO(b"x" * 10), 10) == b"x" * 10
    assert read_at_most(io.BytesIO(b"x" * 11), 10) is None

    class Counting(io.BytesIO):
        largest = 0

        def readline(self, size=-1):
            line = super().readline(size)
            Counting.largest = max(Counting.largest, len(line))
            return line

    stream = Counting(b"short\n" + b"y" * 5_000_000 + b"\n" + b"after\n" + b"z" * 20 + b"\nend")
    assert list(bounded_lines(stream, limit=10)) == [b"short\n", None, b"after\n", None, b"end"]
    assert Counting.largest <= 1 << 20  # the long line was read past in pieces, never whole


def test_copy_at_most_stops_past_the_bound(tmp_path):
    out = io.BytesIO()
    assert copy_at_most(io.BytesIO(b"a" * 100), out, 100) and out.getvalue() == b"a" * 100
    out = io.BytesIO()
    assert not copy_at_most(io.BytesIO(b"a" * 101), out, 100) and len(out.getvalue()) <= 101
