"""Writing WARC files the way crawlers do, for tests that build broken or planted crawls from real pages."""
import io
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


def write_warc(path: Path, records: list[tuple[str, bytes, str]], gzip_records: bool = True) -> None:
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gzip_records)
        for url, payload, content_type in records:
            headers = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(payload),
                                                          http_headers=headers))
