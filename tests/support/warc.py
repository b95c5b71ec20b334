"""Writing WARC files the way crawlers do, for tests that build broken or planted crawls from real pages."""
import io
from pathlib import Path

import matplotlib
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


def write_warc(path: Path, records: list[tuple[str, bytes, str]], gzip_records: bool = True) -> None:
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gzip_records)
        for url, payload, content_type in records:
            headers = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(payload),
                                                          http_headers=headers))


def real_pages(shared_data, n):
    """(url, html bytes) of the first n pages of the real news crawl."""
    pages = []
    with open(shared_data / "crawl" / "news-200.warc.gz", "rb") as f:
        for record in ArchiveIterator(f):
            pages.append((record.rec_headers.get_header("WARC-Target-URI"), record.content_stream().read()))
            if len(pages) == n:
                return pages


def cyrillic_page(shared_data) -> tuple[str, str]:
    for url, html in real_pages(shared_data, 200):
        text = html.decode("utf-8")
        if sum("а" <= c <= "я" for c in text) > 500:
            return url, text
    raise AssertionError("no Cyrillic page in the crawl")


def broken_crawl(folder: Path, shared_data: Path) -> tuple[Path, str]:
    """A folder of real-but-broken WARC files built from the real crawls, and the text of its Cyrillic page."""
    news = (shared_data / "crawl" / "news-200.warc.gz").read_bytes()
    (folder / "a_truncated.warc.gz").write_bytes(news[:300_000])  # cut inside a gzip member
    (folder / "b_empty.warc.gz").write_bytes(b"")
    pages = real_pages(shared_data, 3)
    write_warc(folder / "c_broken.warc", [(u, h, "text/html") for u, h in pages], gzip_records=False)
    raw = (folder / "c_broken.warc").read_bytes()
    second = raw.index(b"WARC/1.0", 10)
    (folder / "c_broken.warc").write_bytes(raw[:second] + b"GARBAGE!" + raw[second + 8:])  # header of record 2
    url, text = cyrillic_page(shared_data)
    png = (Path(matplotlib.get_data_path()) / "images" / "home.png").read_bytes()
    pdf = io.BytesIO()
    import matplotlib.pyplot as plt

    plt.figure().savefig(pdf, format="pdf")
    plt.close("all")
    write_warc(folder / "d_mixed.warc.gz", [
        ("http://example.org/logo.png", png, "image/png"),
        ("http://example.org/paper.pdf", pdf.getvalue(), "application/pdf"),
        (url, text.encode("cp1251", errors="xmlcharrefreplace"), "text/html; charset=windows-1251"),
        ("http://example.org/nothing", b"", "text/html"),
    ])
    return folder, text
