"""Records warcio parses without checking, and inputs that are not files, are the file's damage: skipped and counted
as corrupt_file, the pages before them kept, never a traceback out of the read stage (issue 22). Real pages of the
news crawl, written as crawlers write them and then damaged."""
import os
import re

import zstandard

from pipeline.read.warc import CheckedWarcReader
from tests.support.warc import real_pages, write_warc


def read(folder, name):
    reader = CheckedWarcReader(str(folder), [name], str(folder / "skipped"))
    documents = list(reader.run())
    counts = {k: (v.total if hasattr(v, "total") else v) for k, v in reader.stats.stats.items()}
    return documents, counts


def crawl(tmp_path, shared_data) -> bytes:
    write_warc(tmp_path / "base.warc", [(u, h, "text/html") for u, h in real_pages(shared_data, 3)],
               gzip_records=False)
    return (tmp_path / "base.warc").read_bytes()


def test_a_response_without_target_uri_ends_the_file_as_corrupt(tmp_path, shared_data):
    """warcio read `None.startswith` there: an AttributeError out of prepare's read stage."""
    raw = crawl(tmp_path, shared_data)
    second = raw.index(b"WARC/1.0", 10)
    garbled = raw[:second] + re.sub(rb"WARC-Target-URI: [^\r]*\r\n", b"", raw[second:], count=1)
    (tmp_path / "x.warc").write_bytes(garbled)
    documents, counts = read(tmp_path, "x.warc")
    assert len(documents) == 1 and counts["skipped_corrupt_file"] == 1  # the page before the damage is kept


def test_a_garbled_zstd_stream_is_corrupt(tmp_path, shared_data):
    packed = zstandard.ZstdCompressor().compress(crawl(tmp_path, shared_data))
    middle = len(packed) // 2
    (tmp_path / "x.warc.zst").write_bytes(packed[:middle] + packed[middle - 2000:])  # a repeated piece
    documents, counts = read(tmp_path, "x.warc.zst")
    assert counts["skipped_corrupt_file"] == 1


def test_a_fifo_is_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "x.warc")  # opening it for reading would block until a writer came
    documents, counts = read(tmp_path, "x.warc")
    assert documents == [] and counts["skipped_corrupt_file"] == 1
