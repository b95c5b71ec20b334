"""Compression bombs: no record, line or HTTP body is held beyond gptstack/files.py's MAX_RECORD_BYTES (issue 22: a
2.4 KB .warc.gz whose HTTP body was gzip-encoded to 1 GiB took cleaning to 3.9 GB, and once to a SIGSEGV).

Each bomb decodes to 1 GiB and is built by streaming (never held decoded). The reader must skip it as `too_large`,
keep the records around it, and stay far below 1 GiB: Python's allocations are traced while it reads."""
import gzip
import io
import json
import tracemalloc
import zlib
from pathlib import Path

import pytest
import zstandard
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from gptstack.files import MAX_RECORD_BYTES
from pipeline.read.readers import CheckedJsonlReader
from pipeline.read.warc import CheckedWarcReader
from tests.support.warc import real_pages

GIB = 1 << 30
BOUND = 3 * MAX_RECORD_BYTES  # what reading may peak at (measured: 1-2.5 x): the record, a join of it, a block


def streamed(compressor, piece: bytes, total: int, head: bytes = b"", tail: bytes = b"") -> bytes:
    """head + `piece` repeated to `total` bytes + tail, compressed piece by piece (never built whole)."""
    out = [compressor.compress(head)]
    for _ in range(total // len(piece)):
        out.append(compressor.compress(piece))
    out.append(compressor.compress(tail))
    out.append(compressor.flush())
    return b"".join(out)


def gzip_stream(level: int = 1):
    return zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)


def read_traced(reader) -> tuple[list, dict, int]:
    """Run a reader to its end; its documents, its stats and the peak of Python's allocations meanwhile."""
    tracemalloc.start()
    try:
        documents = list(reader.run())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    counts = {k: (v.total if hasattr(v, "total") else v) for k, v in reader.stats.stats.items()}
    return documents, counts, peak


def response(writer: WARCWriter, url: str, payload: bytes, headers: list[tuple[str, str]]):
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"), *headers], protocol="HTTP/1.1")
    return writer.create_warc_record(url, "response", payload=io.BytesIO(payload), http_headers=http)


@pytest.fixture(scope="module")
def gzip_body() -> bytes:
    """1 GiB of zeros, gzip-encoded as an HTTP body (4.5 MB; a few KB once the .warc.gz compresses it again)."""
    return streamed(gzip_stream(), bytes(1 << 20), GIB)


@pytest.fixture(scope="module")
def bomb_crawl(tmp_path_factory, shared_data, gzip_body) -> Path:
    """A real page, the gzip-encoded bomb, the same bomb sent chunked (one chunk: warcio inflates a chunk at once),
    a chunk header announcing 2 GiB, and another real page: all in one .warc.gz."""
    folder = tmp_path_factory.mktemp("bomb_crawl")
    (first_url, first), (last_url, last) = real_pages(shared_data, 2)
    chunked = b"%x\r\n" % len(gzip_body) + gzip_body + b"\r\n0\r\n\r\n"
    with open(folder / "bomb.warc.gz", "wb") as f:
        writer = WARCWriter(f, gzip=True)
        writer.write_record(response(writer, first_url, first, []))
        writer.write_record(response(writer, "http://bomb.example/gzip", gzip_body, [("Content-Encoding", "gzip")]))
        writer.write_record(response(writer, "http://bomb.example/chunked", chunked,
                                     [("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")]))
        writer.write_record(response(writer, "http://bomb.example/big-chunk", b"7fffffff\r\n" + b"x" * 100,
                                     [("Transfer-Encoding", "chunked")]))
        writer.write_record(response(writer, last_url, last, []))
    return folder


def test_warc_http_body_bomb_is_skipped_in_bounded_memory(bomb_crawl, tmp_path):
    assert (bomb_crawl / "bomb.warc.gz").stat().st_size < 200_000  # two real pages and the bombs
    reader = CheckedWarcReader(str(bomb_crawl), ["bomb.warc.gz"], str(tmp_path / "excluded" / "00_warc"))
    documents, counts, peak = read_traced(reader)
    assert peak < BOUND, f"reading the bomb peaked at {peak / 2**20:.0f} MiB"
    assert counts["records"] == 5 and counts["skipped_too_large"] == 3
    assert len(documents) == 2 and "bomb.example" not in " ".join(d.metadata["url"] for d in documents)
    kept = [json.loads(line) for line in (tmp_path / "excluded" / "00000-warc.jsonl").open()]
    assert [r["reason"] for r in kept] == ["too_large"] * 3  # counted and kept like other bad records
    assert all("bomb.example" in r["record"]["url"] for r in kept)


def test_warc_header_line_bomb_ends_that_file_only(shared_data, tmp_path):
    """A WARC header line without an end (1 GiB of 'A'): the rest of that file is corrupt, the next file is read."""
    folder = tmp_path / "crawl"
    folder.mkdir()
    (folder / "a_bomb.warc.gz").write_bytes(
        streamed(gzip_stream(), b"A" * (1 << 20), GIB, head=b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Long: "))
    url, page = real_pages(shared_data, 1)[0]
    with open(folder / "b_fine.warc.gz", "wb") as f:
        writer = WARCWriter(f, gzip=True)
        writer.write_record(response(writer, url, page, []))
    reader = CheckedWarcReader(str(folder), ["a_bomb.warc.gz", "b_fine.warc.gz"], str(tmp_path / "skipped"))
    documents, counts, peak = read_traced(reader)
    assert peak < BOUND, f"reading the bomb peaked at {peak / 2**20:.0f} MiB"
    assert counts["skipped_corrupt_file"] == 1 and len(documents) == 1 and documents[0].metadata["url"] == url


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_jsonl_line_bomb_is_skipped_in_bounded_memory(tmp_path, suffix):
    """A 1 GiB JSON line between two good ones, gzip- or zstd-compressed (32 KB of zstd holds it)."""
    compressor = gzip_stream() if suffix == ".jsonl.gz" else zstandard.ZstdCompressor(level=3).compressobj()
    head = b'{"text": "before"}\n{"text": "'
    (tmp_path / f"bomb{suffix}").write_bytes(
        streamed(compressor, b"a" * (1 << 20), GIB, head=head, tail=b'"}\n{"text": "after"}\n'))
    reader = CheckedJsonlReader(str(tmp_path), [f"bomb{suffix}"], str(tmp_path / "rejected"))
    documents, counts, peak = read_traced(reader)
    assert peak < BOUND, f"reading the bomb peaked at {peak / 2**20:.0f} MiB"
    assert [d.text for d in documents] == ["before", "after"] and counts["skipped_too_large"] == 1
    rejected = [json.loads(line) for line in (tmp_path / "rejected" / "00000-jsonl.jsonl").open()]
    assert [(r["where"].rsplit(":", 1)[1], r["reason"]) for r in rejected] == [("2", "too_large")]


def test_a_line_just_under_the_bound_is_kept(tmp_path):
    text = "b" * (MAX_RECORD_BYTES - 100)
    with gzip.open(tmp_path / "big.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": text}) + "\n")
    documents = list(CheckedJsonlReader(str(tmp_path), ["big.jsonl.gz"], str(tmp_path / "rejected")).run())
    assert len(documents) == 1 and len(documents[0].text) == len(text)


def test_zstd_fed_piecewise_still_reads_every_frame_and_finds_a_cut(tmp_path):
    """The .zst reader now decodes 1 KiB at a time: frames of every size still read whole, and a file cut inside a
    frame is still a corrupt file (the earlier lines kept)."""
    lines = [json.dumps({"text": f"document {i} " + "word " * (i % 300)}).encode() + b"\n" for i in range(3000)]
    compressor = zstandard.ZstdCompressor(level=3)
    frames = b"".join(compressor.compress(b"".join(lines[i:i + 700])) for i in range(0, len(lines), 700))
    (tmp_path / "frames.jsonl.zst").write_bytes(frames)
    (tmp_path / "cut.jsonl.zst").write_bytes(frames[:len(frames) // 2])
    reader = CheckedJsonlReader(str(tmp_path), ["frames.jsonl.zst", "cut.jsonl.zst"], str(tmp_path / "rejected"))
    documents = list(reader.run())
    assert [d.text for d in documents[:3000]] == [json.loads(line)["text"] for line in lines]
    assert 0 < len(documents) - 3000 < 3000
    rejected = [json.loads(line) for line in (tmp_path / "rejected" / "00000-jsonl.jsonl").open()]
    assert [r["reason"] for r in rejected] == ["corrupt_file"] and "cut.jsonl.zst" in rejected[0]["where"]
