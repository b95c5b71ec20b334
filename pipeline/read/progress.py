"""How far the read stage's tasks are through their input files, for its progress bar (pipeline/runner/progress.py).

The read stage is the slowest and has few tasks (one per input file), so a bar counting finished tasks sits at
`0/1` for the whole run. Instead, every reader that reads files (jsonl, parquet, WARC) gives each task a
`ReadProgress`: bytes of its input files consumed so far (the position in the file on disk, before any
decompression, so it counts against the files' sizes) and documents read, written at most twice a second to
`<stage logging folder>/progress/<rank>.<reader>` as "BYTES DOCUMENTS". The bar in the main process sums these
against the input files' total size, known up front for local files. Nothing here touches the documents.

Where the progress files cannot be seen (a remote input whose size is unknown, the nodes of a Ray cluster writing
elsewhere) the bar still advances by every finished task's share of the bytes (its completion marker), and for input
of unknown size it counts tasks, as before.
"""
import os
import time
from pathlib import Path

from pipeline.read.blocks import contiguous_block

PROGRESS_FOLDER = "progress"  # inside the stage's logging folder
INTERVAL = 0.5  # seconds between two writes of one task's progress file


def raw_file(f):
    """The file on disk under the decompressing and buffering layers of `f` (gzip's fileobj, a BufferedReader's
    raw, our CheckedZstdReader's source, fsspec's LocalFileOpener's f): its tell() is the bytes consumed."""
    for _ in range(8):
        inner = next((getattr(f, name) for name in ("fileobj", "raw", "source", "f")
                      if getattr(f, name, None) is not None), None)
        if inner is None:
            break
        f = inner
    return f


class ReadProgress:
    """One task's bytes and documents read by one reader; `folder` None: counts, writes nothing."""

    def __init__(self, folder: str | None, rank: int, reader: int = 0):
        self.path = Path(folder) / f"{rank:05d}.{reader}" if folder else None
        self.done = self.size = self.documents = 0
        self.current, self.last, self.fraction_read = None, 0.0, 0.0

    def start_file(self, data_folder, filepath: str, f=None) -> None:
        """A file starts being read, through `f` (None: progress is reported with `fraction`)."""
        try:
            self.size = int(data_folder.size(filepath))
        except Exception:  # (a remote file without a size: its bytes are simply not counted)
            self.size = 0
        self.current, self.fraction_read = (raw_file(f) if f is not None else None), 0.0

    def end_file(self) -> None:
        self.done += self.size
        self.size, self.current = 0, None
        self.write()

    def fraction(self, value: float) -> None:
        """For a reader without a sequential position (parquet row groups): the part of the file read."""
        self.fraction_read = min(max(value, 0.0), 1.0)

    def position(self) -> int:
        within = int(self.size * self.fraction_read)
        if self.current is not None:
            try:
                within = max(within, min(int(self.current.tell()), self.size))
            except (OSError, ValueError, AttributeError):  # closed, or no tell()
                pass
        return self.done + within

    def document(self) -> None:
        self.documents += 1
        now = time.monotonic()
        if self.path is not None and now - self.last >= INTERVAL:
            self.last = now
            self.write()

    def write(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.tmp")
            temporary.write_text(f"{self.position()} {self.documents}\n")
            os.replace(temporary, self.path)
        except OSError:  # progress is a nicety: a full disk shows up elsewhere
            pass


def read_progress(folder: Path) -> dict[int, tuple[int, int]]:
    """rank -> (bytes, documents) summed over the rank's readers, from the files `ReadProgress` writes."""
    found: dict[int, tuple[int, int]] = {}
    for path in Path(folder).glob("[0-9]*.[0-9]*"):
        try:
            consumed, documents = (int(value) for value in path.read_text().split())
            rank = int(path.name.split(".")[0])
        except (OSError, ValueError):  # being replaced, or not ours
            continue
        before = found.get(rank, (0, 0))
        found[rank] = (before[0] + consumed, before[1] + documents)
    return found


def local_size(reader, name: str) -> int | None:
    """Size of one of a reader's input files when it is local, else None."""
    folder = getattr(reader, "data_folder", None)
    root = getattr(folder, "path", None)
    protocol = getattr(getattr(folder, "fs", None), "protocol", None)
    if not isinstance(root, str) or "://" in root or (protocol and "file" not in (
            [protocol] if isinstance(protocol, str) else list(protocol))):
        return None
    try:
        return os.path.getsize(os.path.join(root, name))
    except OSError:
        return None


def task_shares(readers: list, tasks: int) -> list[int] | None:
    """Bytes of input each task reads (files are split in contiguous blocks, pipeline/read/blocks.py),
    or None when a reader does not read local files (the packaged corpora, remote input): then the bar counts tasks."""

    if not readers or not all(isinstance(getattr(r, "files", None), list) and hasattr(r, "progress_folder")
                              for r in readers):
        return None
    shares = [0] * tasks
    for reader in readers:
        sizes = [local_size(reader, name) for name in reader.files]
        if any(size is None for size in sizes):
            return None
        for rank in range(tasks):
            shares[rank] += sum(contiguous_block(sizes, rank, tasks))
    return shares
