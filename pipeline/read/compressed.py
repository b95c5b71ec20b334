"""Input files opened so that a truncated .zst is an error, as a truncated .gz already is.

Python's gzip raises EOFError when a .gz ends before its end-of-stream marker. zstandard's stream reader (what
datatrove's and fsspec's `.zst` support use) does not: a .jsonl.zst cut in half reads as a shorter file whose last
line is cut, which our checked reader would count as one malformed record, or, for a file smaller than one zstd
block, as an empty file. `open_input` decodes .zst with a decompressor that knows whether each frame reached its
end, and raises EOFError (the readers' corrupt_file) when the input stops inside a frame.

It feeds the decompressor FEED_SIZE compressed bytes at a time, because one call decodes all it is given: 32 KB of
zstd can hold 1 GiB of zeros. zstd's densest block (an RLE block: 4 bytes) holds 128 KiB, so one call yields at
most 32 MiB however the file was made; lines are then bounded by gptstack/files.py's MAX_RECORD_BYTES.
"""
import io

ZSTD_SUFFIXES = (".zst", ".zstd")
READ_SIZE = 1 << 17  # compressed bytes read from the file at once
FEED_SIZE = 1 << 10  # compressed bytes decoded at once: at most 1 KiB / 4 B x 128 KiB = 32 MiB out


class CheckedZstdReader(io.RawIOBase):
    """A readable binary stream of the zstd frames in `source`; EOFError when `source` ends inside a frame."""

    def __init__(self, source):
        import zstandard

        self.source, self.zstd = source, zstandard.ZstdDecompressor()
        self.frame, self.fed = self.zstd.decompressobj(), False
        self.pending, self.position = b"", 0  # decompressed bytes not read yet: pending[position:]
        self.compressed, self.offset = b"", 0  # compressed bytes not decoded yet: compressed[offset:]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self.position == len(self.pending):
            self.pending, self.position = b"", 0
            if self.offset == len(self.compressed):
                self.compressed, self.offset = self.source.read(READ_SIZE), 0
                if not self.compressed:
                    if self.fed and not self.frame.eof:
                        raise EOFError("the zstd stream ends inside a frame (file truncated)")
                    return 0
            data = self.compressed[self.offset:self.offset + FEED_SIZE]
            self.offset += len(data)
            while data:
                if self.frame.eof:  # the next frame of a multi-frame file
                    self.frame, self.fed = self.zstd.decompressobj(), False
                self.pending += self.frame.decompress(data)
                self.fed = True
                data = self.frame.unused_data if self.frame.eof else b""
        size = min(len(buffer), len(self.pending) - self.position)
        buffer[:size] = self.pending[self.position:self.position + size]
        self.position += size
        return size

    def close(self) -> None:
        self.source.close()
        super().close()


def open_input(data_folder, path: str, compression: str | None = "infer"):
    """`data_folder.open(path, "rb", compression)`, except that .zst input is checked for truncation."""
    if compression == "zstd" or (compression == "infer" and path.endswith(ZSTD_SUFFIXES)):
        return io.BufferedReader(CheckedZstdReader(data_folder.open(path, "rb", compression=None)))
    return data_folder.open(path, "rb", compression=compression)
