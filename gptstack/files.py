"""The one way this project writes a file that must survive a crash, and checks a folder before writing into it.

Every writer of a file that matters (shards, manifests, stage records, weights, trainer state, configs, reports)
goes through `atomic_write` or `atomic_file`: a temp file in the same folder (so the rename stays on one
filesystem), flushed and fsynced, renamed over the target, then the folder fsynced so that the rename itself is on
disk. A reader sees the old file or the new one, never half of one. Files get the usual permissions (0666 minus
the umask), whichever library wrote the temp file.
"""
import contextlib
import os
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

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
