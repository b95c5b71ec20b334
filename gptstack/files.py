"""The one way this project writes a file that must survive a crash, and checks a folder before writing into it.

Every writer of a file that matters (shards, manifests, stage records, weights, trainer state, configs, reports)
goes through `atomic_write` or `atomic_file`: a temp file in the same folder (so the rename stays on one
filesystem), flushed and fsynced, renamed over the target, then the folder fsynced so that the rename itself is on
disk. A reader sees the old file or the new one, never half of one. Files get the usual permissions (0666 minus
the umask), whichever library wrote the temp file.

It is also the one safe way to copy a file and to open one for writing: no symbolic link is followed and no special
file (a FIFO, a device such as /dev/zero) is read or written where a plain file is expected (`copy_file`,
`copy_flat_folder`, `flat_folder_files`, `open_for_write`), and `MAX_RECORD_BYTES` bounds what one record, line or
HTTP body of the input may decode to (`read_at_most`, `bounded_lines`).
"""
import contextlib
import errno
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import IO, BinaryIO, Callable, Iterator, Optional, Union

from gptstack.errors import GPTStackError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink inside `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _commit(temp: Path, path: Path) -> None:
    os.chmod(temp, 0o666 & ~_umask())  # libraries such as safetensors create their files 0600
    os.replace(temp, path)
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_file(path: Union[str, Path]) -> Iterator[BinaryIO]:
    """`with atomic_file(p) as f: f.write(...)`: `p` appears complete when the block ends, or not at all."""
    path = Path(path)
    temp = _temp_path(path)
    file = open(temp, "xb")
    try:
        yield file
        file.flush()
        os.fsync(file.fileno())
        file.close()
        _commit(temp, path)
    except BaseException:
        file.close()
        temp.unlink(missing_ok=True)
        raise


def atomic_write(path: Union[str, Path], content: Union[bytes, str, Callable[[Path], None]]) -> None:
    """Write bytes, text (UTF-8), or whatever `content(temp_path)` writes to a path, atomically to `path`."""
    path = Path(path)
    if not callable(content):
        with atomic_file(path) as file:
            file.write(content.encode() if isinstance(content, str) else content)
        return
    temp = _temp_path(path)
    try:
        content(temp)
        with open(temp, "rb+") as file:
            os.fsync(file.fileno())
        _commit(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def check_writable_dir(folder: Union[str, Path], what: str, error: type = GPTStackError) -> Path:
    """Create `folder` if needed and prove a file can be written in it; else raise `error` naming `what`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise error(f"{what} {folder}: not writable ({e.strerror or e})") from None
    return folder


# ---- links and special files: never followed, never read or written as if they were plain files ---------------
# A link inside a folder we copy (a tokenizer folder) would carry its target along (a private key copied into every
# checkpoint; /dev/zero copied until the disk is full); one where we write would write into its target.
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_NO_BLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO is opened (and then refused) instead of waiting for a writer


def entry_kind(path: Union[str, Path]) -> str:
    """What `path` itself is, links not followed: "file", "folder", "symbolic link", "FIFO", "device", ..."""
    mode = os.lstat(path).st_mode
    for test, kind in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "folder"), (stat.S_ISLNK, "symbolic link"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "device"), (stat.S_ISBLK, "device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return kind
    return "special file"


def _not_a_plain_file(path: Path, kind: str, what: str, error: type) -> GPTStackError:
    how = {"folder": "a sub-folder", "symbolic link": "a symbolic link, which is never followed"}.get(kind, f"a {kind}")
    return error(f"{what}: {path.name} is {how} (only plain files are accepted here)")


def flat_folder_files(folder: Union[str, Path], what: str, error: type = GPTStackError) -> list:
    """The plain files of a folder that must hold nothing else (a tokenizer folder), sorted; a symbolic link, a
    special file or a sub-folder in it is an `error` naming it (`what` names the folder in the message)."""
    folder = Path(folder)
    files = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        kind = entry_kind(entry.path)
        if kind != "file":
            raise _not_a_plain_file(Path(entry.path), kind, what, error)
        files.append(Path(entry.path))
    return files


def _open_plain(path: Path, flags: int, what: str, error: type, mode: int = 0o666) -> int:
    """os.open without following a link, then refuse anything but a plain file (checked on the open descriptor)."""
    try:
        fd = os.open(path, flags | _NO_FOLLOW | _NO_BLOCK, mode)
    except OSError as e:
        if e.errno == errno.ELOOP or (e.errno == errno.ENXIO and os.path.lexists(path)):  # a link; a FIFO
            raise _not_a_plain_file(path, entry_kind(path), what, error) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_plain_file(path, entry_kind(path), what, error)
    if _NO_BLOCK:
        os.set_blocking(fd, True)
    return fd


def copy_file(source: Union[str, Path], destination: Union[str, Path], what: str = "",
              error: type = GPTStackError) -> None:
    """Copy the plain file `source` to `destination` atomically (`atomic_file`: a link already at `destination` is
    replaced, not written through); a `source` that is a link or a special file is an `error`."""
    source = Path(source)
    fd = _open_plain(source, os.O_RDONLY, what or str(source.parent), error)
    with os.fdopen(fd, "rb") as reader, atomic_file(destination) as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)


def copy_flat_folder(source: Union[str, Path], destination: Union[str, Path], what: str = "",
                     error: type = GPTStackError) -> Path:
    """Copy a folder that holds only plain files into the new folder `destination` (made here; it must not exist),
    every file fsynced. Checked before anything is copied: a link, a special file or a sub-folder is an `error`."""
    source, destination = Path(source), Path(destination)
    what = what or str(source)
    files = flat_folder_files(source, what, error)
    destination.mkdir()
    for file in files:
        copy_file(file, destination / file.name, what, error)
    return destination


def open_for_write(path: Union[str, Path], mode: str = "w", what: str = "", error: type = GPTStackError,
                   **kwargs) -> IO:
    """open(path, mode) for "w"/"a" (text or "b") that refuses a path which is a symbolic link or a special file
    (O_NOFOLLOW): for files written in place in a user-named folder (metrics.jsonl appended in a run folder)."""
    path = Path(path)
    base = mode.replace("b", "").replace("t", "")
    flags = {"w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND}[base]
    fd = _open_plain(path, flags, what or str(path.parent), error)
    return os.fdopen(fd, mode, **kwargs)


# ---- one bound on what a record of the input may decode to -------------------------------------------------------
# A few KB of gzip can hold gigabytes (a .warc.gz whose HTTP body is itself gzip-encoded: 2.4 KB -> 1 GiB). No record,
# JSON line, WARC payload or downloaded body is ever held whole beyond this; a bigger one is skipped and counted.
MAX_RECORD_BYTES = 64 * 2**20


def read_at_most(stream, limit: int = MAX_RECORD_BYTES) -> Optional[bytes]:
    """All of `stream` when it holds at most `limit` bytes, else None (having read only `limit` + 1 of them)."""
    data = stream.read(limit + 1)
    return None if len(data) > limit else data


def copy_at_most(reader, writer, limit: int = MAX_RECORD_BYTES) -> bool:
    """Copy `reader` to `writer` in pieces (an HTTP body to a file); False, having stopped, once it is over `limit`."""
    copied = 0
    while True:
        piece = reader.read(min(1 << 20, limit + 1 - copied))
        if not piece:
            return True
        writer.write(piece)
        copied += len(piece)
        if copied > limit:
            return False


def bounded_lines(stream, limit: int = MAX_RECORD_BYTES) -> Iterator[Optional[bytes]]:
    """The lines of a binary stream, as iterating it gives them; None for a line longer than `limit` bytes, whose
    bytes are read past in pieces and never held at once."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit:
            yield line
            continue
        while line and not line.endswith(b"\n"):  # the rest of the long line
            line = stream.readline(1 << 20)
        yield None
