"""WARC input: `--corpus commoncrawl --input PATHS` -> one document per HTML response record.

PATHS (files, folders, globs, `s3://...` URLs; see `pipeline.read.corpora.expand_input`) name files ending in one of
WARC_SUFFIXES.

`CheckedWarcReader` is datatrove's WarcReader with datatrove's record rules (response/conversion records, HTML
payloads, UTF-8 then a detected charset) that never skips silently: every record it does not turn into a document
(a request or metadata record, an image or PDF payload, bytes no charset decodes, the unreadable rest of a
truncated or corrupt file, an empty file) is counted under its reason in the step's stats and written as a
pointer (file, byte offset, record id, URL, reason) to its exclusion folder (`rejected/warc/`). Damaged input (a
file cut short, even inside a record; a garbled record; an empty file; undecodable bytes) is also kept like a bad
jsonl line in `rejected/<task>-warc.jsonl` and warned about, so it shows in the manifest's `skipped`.

No record is held beyond gptstack/files.py's MAX_RECORD_BYTES once decoded (`read_payload`, `_BoundedLines`): a
payload whose HTTP chunks or Content-Encoding decode past it is skipped as `too_large` (the next record is read),
and a WARC header line that long ends that file as corrupt.
"""
import os
import zlib
from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.readers import WarcReader
from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import ChunkedDataReader, DecompressingBufferedReader
from warcio.exceptions import ArchiveLoadFailed
from zstandard import ZstdError

from gptstack.files import MAX_RECORD_BYTES, read_at_most
from pipeline.read.blocks import contiguous_block
from pipeline.read.charsets import decode_page
from pipeline.read.progress import ReadProgress
from pipeline.read.readers import RejectedRecords, exclusion_writer

WARC_SUFFIXES = (".warc", ".warc.gz", ".warc.zst", ".arc.gz")
HTML_TYPES = ("text/html", "application/xhtml+xml")
# Reasons that mean the input itself is damaged, not merely a record that is no page (pipeline/readers.SKIP_REASONS)
DAMAGE_REASONS = ("corrupt_file", "empty_file", "undecodable", "too_large")
# What reading a damaged file raises: a cut or garbled gzip or zstd stream, a garbled record (GarbledRecord, a
# RecordTooLarge header line: both ValueErrors). The rest of that file is skipped as corrupt_file.
DAMAGE_ERRORS = (ArchiveLoadFailed, EOFError, OSError, zlib.error, ZstdError, ValueError)


class RecordTooLarge(ValueError):
    """A WARC header line or HTTP body that decodes to more than MAX_RECORD_BYTES (a compression bomb)."""


class GarbledRecord(ValueError):
    """What warcio raised on bytes it parsed without checking them (a response record without WARC-Target-URI is an
    AttributeError deep inside it): the file is damaged from there on, like a truncated one."""


def parsed_records(iterator: ArchiveIterator):
    """warcio's records, one at a time; any error while parsing one is the file's damage (GarbledRecord), never a
    traceback out of the read stage."""
    records = iter(iterator)
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except DAMAGE_ERRORS:
            raise
        except Exception as e:
            raise GarbledRecord(f"a garbled record ({type(e).__name__}: {e})") from e
        yield record


class _BoundedLines(DecompressingBufferedReader):
    """warcio's reader of the WARC file, whose header lines end within MAX_RECORD_BYTES: a header line without an
    end would otherwise be read whole, however long (the rest of the file is then skipped as corrupt)."""

    def readline(self, length=None):
        cap = MAX_RECORD_BYTES + 1 if length is None else min(length, MAX_RECORD_BYTES + 1)
        pieces, size = [], 0
        while size < cap:  # (warcio's readline(length) may stop before the end of a line or `length`)
            piece = super().readline(cap - size)
            pieces.append(piece)
            size += len(piece)
            if not piece or piece.endswith(b"\n"):
                break
        if size > MAX_RECORD_BYTES:
            raise RecordTooLarge(f"a header line longer than {MAX_RECORD_BYTES >> 20} MiB")
        return b"".join(pieces)


class _BoundedBody(ChunkedDataReader):
    """What `record.content_stream()` reads (HTTP chunks joined, Content-Encoding decoded), with every decoded byte
    counted: warcio reads a whole chunk (up to 2 GiB) at once and inflates it at once, so 1 MB of gzip in one chunk
    became 1 GiB in memory. Here no chunk over the bound is read, and no inflate call returns more than is left."""

    def __init__(self, stream, decomp_type, chunked: bool, limit: int = MAX_RECORD_BYTES):
        super().__init__(stream, decomp_type=decomp_type)
        self.not_chunked, self.left = not chunked, limit

    def _try_decode(self, length_header):
        try:
            size = int(length_header[:-2].split(b";")[0], 16)
        except ValueError:
            size = 0  # not a chunk header: warcio's own fallback reads the rest as plain data
        if size > self.left:
            raise RecordTooLarge(f"an HTTP chunk of {size:,} bytes")
        return super()._try_decode(length_header)

    def _decompress(self, data):
        if self.decompressor is None or not data:
            out = data
        else:
            try:
                out = self.decompressor.decompress(data, self.left + 1)  # (zlib keeps the rest: never inflated)
            except zlib.error:
                if self.num_block_read:  # warcio's rule: damage after the start ends the body
                    return b""
                # warcio's rule at the start: raw deflate, or no compression at all despite the header
                self._init_decomp("deflate_alt" if self.decomp_type == "deflate" else None)
                return self._decompress(data)
        if len(out) > self.left:
            raise RecordTooLarge(f"an HTTP body that decodes to more than {MAX_RECORD_BYTES >> 20} MiB")
        self.left -= len(out)
        return out


def read_payload(record) -> bytes:
    """The record's payload as `record.content_stream().read()` gives it (HTTP chunks joined, Content-Encoding
    gzip/deflate decoded), held only while it is at most MAX_RECORD_BYTES: RecordTooLarge otherwise."""
    stream = record.raw_stream
    if record.http_headers:
        encoding = (record.http_headers.get_header("content-encoding") or "").lower()
        encoding = encoding if encoding in ("gzip", "deflate") else None  # what zlib inflates with a bound
        chunked = record.http_headers.get_header("transfer-encoding") == "chunked"
        if chunked or encoding:
            stream = _BoundedBody(record.raw_stream, encoding, chunked)
    content = read_at_most(stream)
    if content is None:
        raise RecordTooLarge(f"a payload of more than {MAX_RECORD_BYTES >> 20} MiB")
    return content


def cut_short(record) -> bool:
    """Whether the file ended before the record's Content-Length did. warcio then hands out what it has without an
    error: in a plain .warc the last page would be kept cut in half (in a .warc.gz, zlib notices)."""
    return getattr(record.raw_stream, "limit", 0) > 0  # warcio's LimitReader: bytes of the record not read


class CheckedWarcReader(WarcReader):
    """datatrove's WarcReader with every skipped record counted and kept as a pointer (see the module doc)."""

    name = "🕷 WARC (checked)"
    # set by the executor for the read stage's progress bar (pipeline/read/progress.py)
    progress_folder: str | None = None
    progress_reader = 0
    progress: ReadProgress | None = None

    def __init__(self, data_folder, files: list[str], exclusion_folder: str, trust_http_content_type: bool = True,
                 **kwargs):
        super().__init__(data_folder, **kwargs)
        self.files, self.exclusion_folder = list(files), exclusion_folder
        self.trust_http_content_type = trust_http_content_type
        self.cjk_charsets = False  # the recipe's warc option: decode as browsers do (pipeline/read/charsets.py)
        self._writer, self._rank, self._rejected = None, 0, None

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        self._rank = rank
        # damaged input also goes where the other readers keep skipped records (rejected/<rank>-warc.jsonl): the
        # manifest's `skipped` and the console's "skipped records" line count it there
        self._rejected = RejectedRecords(self, str(Path(self.exclusion_folder).parent), rank, "warc")
        self.progress = ReadProgress(self.progress_folder, rank, self.progress_reader)
        try:
            with exclusion_writer(self.exclusion_folder) as self._writer:
                for document in self.read_files_shard(contiguous_block(self.files, rank, world_size)):
                    # (datatrove's own "documents" count is only updated when a whole file was read)
                    self.stat_update("documents_passed")
                    self.update_doc_stats(document)
                    self.progress.document()
                    yield document
        finally:
            self._rejected.close()
            self.progress.write()

    def keep_aside(self, filepath: str, offset, reason: str, detail: str = "", record=None) -> None:
        headers = record.rec_headers if record is not None else None
        record_id = headers.get_header("WARC-Record-ID") if headers else None
        where = f"{self.data_folder.resolve_paths(filepath)}@{offset}"
        pointer = {"filter_reason": reason, "detail": detail, "warc_file": filepath, "offset": offset,
                   "record_type": record.rec_type if record is not None else None,
                   "url": headers.get_header("WARC-Target-URI") if headers else None}
        if reason in DAMAGE_REASONS:  # counted, warned about and kept like a bad jsonl line
            self._rejected.add(where, reason, pointer, detail)
        else:  # a record that is fine but not a page (a request, an image): only counted
            self.stat_update(f"skipped_{reason}")
        self._writer.write(Document(text="", id=record_id or where, metadata=pointer), self._rank)

    def read_file(self, filepath: str):
        records, offset = 0, 0
        if self.data_folder.is_local() and not os.path.isfile(self.data_folder.resolve_paths(filepath)):
            # a FIFO would block the task forever waiting for a writer, a device would be read without end
            self.keep_aside(filepath, 0, "corrupt_file", "not a plain file (a FIFO, a device or a folder): not read")
            return
        try:
            with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
                if self.progress:
                    self.progress.start_file(self.data_folder, filepath, f)
                iterator = ArchiveIterator(f)
                iterator.reader.__class__ = _BoundedLines  # (warcio makes its reader in __init__, unread yet)
                for record in parsed_records(iterator):
                    records += 1
                    self.stat_update("records")
                    with self.track_time():
                        document, reason, detail = self.record_to_document(record, filepath)
                    offset = iterator.get_record_offset()  # (asks warcio to finish reading the record first)
                    if cut_short(record):  # the file ends inside this record: its page is a fragment
                        self.keep_aside(filepath, offset, "corrupt_file", f"the file ends inside this record "
                                        f"({record.raw_stream.limit:,} of its bytes missing)", record)
                        return
                    if reason:
                        self.keep_aside(filepath, offset, reason, detail, record)
                    else:
                        yield document
        except DAMAGE_ERRORS as e:
            # A truncated gzip or a garbled record: what was read stays, the rest of this file is skipped.
            self.keep_aside(filepath, offset, "corrupt_file", " ".join(f"{type(e).__name__}: {e}".split())[:300])
            return
        finally:
            if self.progress:
                self.progress.end_file()
        if records == 0:
            self.keep_aside(filepath, 0, "empty_file", "no WARC record in the file")

    def record_to_document(self, record, filepath: str) -> tuple[Document | None, str | None, str]:
        """(document, None, "") or (None, reason, detail): datatrove's process_record with named reasons."""
        if record.rec_type not in ("response", "conversion"):  # wet files hold "conversion" records
            return None, "not_a_response", record.rec_type
        mime = record.rec_headers.get_header("WARC-Identified-Payload-Type")
        http_type = record.http_headers.get_header("Content-Type") if record.http_headers else None
        try:
            content = read_payload(record)
        except RecordTooLarge as e:  # skipped unread; the next record is read as usual
            return None, "too_large", str(e)
        if not content:
            return None, "empty_payload", ""
        if mime is None and self.trust_http_content_type and http_type:
            mime = http_type.split(";")[0].strip().lower()
        if mime is None:
            import magic

            mime = magic.from_buffer(content, mime=True)
        if mime not in HTML_TYPES and not (record.rec_type == "conversion" and mime == "text/plain"):
            return None, "not_html", mime
        html, charset = self.decode(content, http_type)
        if html is None:
            return None, "undecodable", charset or "no charset decodes the bytes"
        headers = record.rec_headers
        document = self.get_document_from_dict({
            "text": html, "id": headers.get_header("WARC-Record-ID"),
            "url": headers.get_header("WARC-Target-URI") or headers.get_header("uri"),
            "date": headers.get_header("WARC-Date") or headers.get_header("archive-date"),
        }, filepath, 0)
        if document is None:
            return None, "empty_payload", ""
        if charset.lower() not in ("utf-8", "utf8"):
            document.metadata["charset"] = charset
        return document, None, ""

    def decode(self, content: bytes, http_type: str | None) -> tuple[str | None, str | None]:
        """The page as text and its charset: the server's declared charset (if trusted), UTF-8, then detected."""
        import cchardet

        if self.cjk_charsets:
            declared = http_type if self.trust_http_content_type and http_type else ""
            declared = declared.lower().split("charset=")[1].split(";")[0] if "charset=" in declared.lower() else None
            return decode_page(content, declared, lambda page: cchardet.detect(page)["encoding"])
        candidates = []
        if self.trust_http_content_type and http_type and "charset=" in http_type.lower():
            candidates.append(http_type.lower().split("charset=")[1].split(";")[0].strip().strip("\"'"))
        candidates.append("utf-8")
        for charset in candidates:
            try:
                return content.decode(charset), charset
            except (UnicodeDecodeError, LookupError):
                continue
        detected = cchardet.detect(content)["encoding"]
        if not detected:
            return None, None
        try:
            return content.decode(detected), detected
        except (UnicodeDecodeError, LookupError):
            return None, detected
