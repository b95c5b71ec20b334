"""WARC records of a real crawl (../shared/data/crawl) for the fuzz tests, and their mutator: bytes of the plain and
gzipped file, and spliced records whose WARC and HTTP headers lie (lengths, encodings, chunking, charsets, bombs).
"""
from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np

from tests.support.fuzz import ENTRY_KINDS, mutate_bytes, mutate_entry

def seed_records(shared_data: Path, count: int = 24) -> list[bytes]:
    """The raw bytes (uncompressed) of the first `count` records of a real crawl file: warcinfo, request, response
    and metadata records as a crawler wrote them."""
    raw = gzip.decompress((shared_data / "crawl" / "dolma-sample-0000.warc.gz").read_bytes())
    return split_records(raw)[:count]


def split_records(raw: bytes) -> list[bytes]:
    """A WARC file's bytes cut at each record's start (b"WARC/1." at the file's start or after a blank line)."""
    starts, at = [0], 0
    while (at := raw.find(b"\r\n\r\nWARC/1.", at + 1)) != -1:
        starts.append(at + 4)
    return [raw[s:e] for s, e in zip(starts, starts[1:] + [len(raw)])]


def build_warcs(dest: Path, shared_data: Path) -> Path:
    records = seed_records(shared_data)
    dest.mkdir(parents=True)
    (dest / "crawl.warc").write_bytes(b"".join(records))
    (dest / "crawl.warc.gz").write_bytes(b"".join(gzip.compress(r) for r in records))  # one member per record
    return dest


def _http_response(rng: random.Random) -> bytes:
    """An HTTP response whose headers lie: Content-Encoding, chunking and charset in hostile combinations."""
    page = rng.choice((b"<html><body><p>" + "Fuzz 中文 ".encode() * 50 + b"</p></body></html>", b"", b"\xff\xfe\x00"))
    headers = [b"HTTP/1.1 " + rng.choice((b"200 OK", b"999 ?", b"", b"200"))]
    body = page
    encoding = rng.choice((None, "gzip", "deflate", "br", "gzip, gzip", "x"))
    if encoding in ("gzip", "deflate"):
        body = gzip.compress(page) if encoding == "gzip" else page
        if rng.random() < 0.3:
            body = gzip.compress(b"<html>" + b"\x00" * rng.choice((2**20, 80 * 2**20)))  # a bomb, or not quite
        if rng.random() < 0.3:
            body = body[:len(body) // 2]
    if encoding:
        headers.append(b"Content-Encoding: " + encoding.encode())
    headers.append(b"Content-Type: text/html" + rng.choice((b"", b"; charset=utf-8", b"; charset=gbk",
                                                            b"; charset=utf-7", b"; charset=rot13",
                                                            b"; charset=base64", b"; charset=nope", b"; charset=",
                                                            b"; charset=utf-16", b"; charset=idna")))
    if rng.random() < 0.3:
        headers.append(b"Transfer-Encoding: chunked")
        size = rng.choice((f"{len(body):x}".encode(), b"zz", b"-1", b"ffffffffffff", b"", b"0",
                           f"{len(body) + 100:x}".encode()))
        body = size + b"\r\n" + body + b"\r\n0\r\n\r\n"
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


def _warc_record(rng: random.Random) -> bytes:
    payload = _http_response(rng)
    length = str(len(payload)) if rng.random() < 0.7 else rng.choice((
        "-5", "abc", "", "99999999999999999999", str(len(payload) + 1000), str(max(0, len(payload) - 10)), "0x10",
        " 12", "1e3"))
    kind = rng.choice(("response", "response", "resource", "conversion", "request", "", "responsé"))
    headers = ["WARC/1.0", f"WARC-Type: {kind}", "WARC-Record-ID: <urn:uuid:fuzz>",
               f"WARC-Target-URI: {rng.choice(('http://example.org/', '', 'not a url', 'http://例子.测试/' * 50))}",
               "WARC-Date: 2024-01-01T00:00:00Z", "Content-Type: application/http; msgtype=response",
               f"Content-Length: {length}"]
    if rng.random() < 0.2:
        headers.append(f"WARC-Identified-Payload-Type: {rng.choice(('text/html', 'image/png', '', 'x' * 1000))}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + payload + b"\r\n\r\n"


def mutate_warc(rng: random.Random, root: Path, folder_name: str = "warc") -> str:
    """Corrupt root/warc's crawl: the bytes of the plain or gzipped file (mostly in the WARC and HTTP headers), a
    record with hostile headers spliced in, or what kind of entry the file is. Leaves exactly one input file."""
    folder = root / folder_name
    plain, packed = folder / "crawl.warc", folder / "crawl.warc.gz"
    choice = rng.random()
    if choice < 0.35:
        packed.unlink()
        data = plain.read_bytes()
        starts = list(np.cumsum([0] + [len(r) for r in split_records(data)[:-1]]))
        start = int(rng.choice(starts))  # a record's WARC headers, and its HTTP headers after them
        new, what = mutate_bytes(rng, data, hot=(start, start + 600))
        plain.write_bytes(new)
        return f"crawl.warc: {what}"
    if choice < 0.55:
        plain.unlink()
        new, what = mutate_bytes(rng, packed.read_bytes())
        packed.write_bytes(new)
        return f"crawl.warc.gz: {what}"
    if choice < 0.92:
        records = split_records(plain.read_bytes())
        at = rng.randrange(len(records) + 1)
        spliced = [_warc_record(rng) for _ in range(rng.randint(1, 3))]
        records[at:at] = spliced
        packed.unlink()
        if rng.random() < 0.5:
            plain.unlink()
            packed.write_bytes(b"".join(gzip.compress(r) for r in records))
            return f"crawl.warc.gz: {len(spliced)} hostile record(s) at {at}"
        plain.write_bytes(b"".join(records))
        return f"crawl.warc: {len(spliced)} hostile record(s) at {at}"
    packed.unlink()
    kinds = tuple(k for k in ENTRY_KINDS if k != "missing")
    return f"crawl.warc: {mutate_entry(rng, plain, root / 'outside', kinds)}"


def warc_input(folder: Path) -> Path:
    """The one crawl file mutate_warc left in `folder`."""
    return next(p for p in sorted(folder.iterdir()) if p.name.startswith("crawl.warc"))


def use_warc(folder: Path) -> dict[str, int]:
    """Read the crawl with the checked reader, as pipeline.clean's read stage does; its counts (documents_passed,
    skipped_<reason>, ...)."""
    from pipeline.read.warc import CheckedWarcReader

    crawl = warc_input(folder)
    reader = CheckedWarcReader(str(folder), [crawl.name], str(folder.parent / "skipped"))
    documents = list(reader.run())
    counts = {key: int(getattr(value, "total", value)) for key, value in reader.stats.stats.items()}
    assert counts.get("documents_passed", 0) == len(documents)
    return counts
