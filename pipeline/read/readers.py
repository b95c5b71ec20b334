"""datatrove readers that never drop a record silently.

datatrove's own readers log a bad line and move on. Ours check every record, and a record that cannot become a
document (malformed JSON, invalid UTF-8, no `text` field, empty text) is skipped, counted in the step's stats, named
in a warning as `file:line`, and kept in `rejected/<task>-<source>.jsonl` with its reason, so nothing is lost.

Files are split between tasks in contiguous blocks (task 0 reads the first files), so concatenating the tasks'
outputs in task order gives the same document order for any number of tasks.
"""
import io
import json
import re
from abc import abstractmethod
from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers.jsonl import JsonlReader
from datatrove.pipeline.readers.parquet import ParquetReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.logging import logger

from gptstack.files import MAX_RECORD_BYTES, bounded_lines, open_for_write
from pipeline.read.blocks import contiguous_block
from pipeline.read.compressed import open_input
from pipeline.read.progress import ReadProgress

SKIP_REASONS = {
    "malformed_json": "malformed JSON",
    "invalid_utf8": "invalid UTF-8",
    "missing_text": "record has no text field",
    "text_not_a_string": "text field is not a string",
    "empty_document": "empty document",
    "corrupt_file": "file is corrupt or truncated; the rest of it is skipped",
    "empty_file": "file holds no record",  # (WARC input)
    "undecodable": "no character set decodes the page",  # (WARC input)
    "too_large": f"larger than {MAX_RECORD_BYTES >> 20} MiB once decoded",  # (gptstack/files.py MAX_RECORD_BYTES)
}
MAX_WARNINGS_PER_TASK = 20


class RejectedRecords:
    """Counts, warns about and keeps the records one task skips (rejected/<rank>-<source>.jsonl)."""

    def __init__(self, step: PipelineStep, folder: str, rank: int, source: str):
        self.step, self.path = step, Path(folder) / f"{rank:05d}-{source}.jsonl"
        self.file, self.count = None, 0

    def add(self, where: str, reason: str, record, detail: str = "") -> None:
        self.step.stat_update(f"skipped_{reason}")
        self.count += 1
        if self.count <= MAX_WARNINGS_PER_TASK:
            logger.warning(f"{where}: skipped ({SKIP_REASONS[reason]}{': ' + detail if detail else ''})")
        elif self.count == MAX_WARNINGS_PER_TASK + 1:
            logger.warning(f"further skipped records are only counted; all are kept in {self.path.parent}")
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open_for_write(self.path, "w", encoding="utf-8")  # (a link planted there is refused)
        self.file.write(json.dumps({"where": where, "reason": reason, "detail": detail, "record": record},
                                   ensure_ascii=False, default=str) + "\n")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def count_skipped(rejected_folder: Path) -> dict[str, int]:
    """Records the readers skipped, by reason, from the `rejected/*.jsonl` files their RejectedRecords wrote."""
    counts: dict[str, int] = {}
    for path in sorted(Path(rejected_folder).glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                reason = json.loads(line)["reason"]
                counts[reason] = counts.get(reason, 0) + 1
    return counts


def text_problem(record, text_key: str) -> str | None:
    """Why `record` cannot become a document (a SKIP_REASONS key), or None when it can."""
    if not isinstance(record, dict):
        return "malformed_json"
    text = record.get(text_key)
    if text is None:
        return "missing_text"
    if not isinstance(text, str):
        return "text_not_a_string"
    if not text.strip():
        return "empty_document"
    if len(text) > MAX_RECORD_BYTES:  # (a Parquet row: the jsonl and WARC readers never hold one this long)
        return "too_large"
    return None


class _CheckedFileReader:
    """Mixin for datatrove disk readers: an explicit, ordered file list and checked records."""

    source = "files"
    # set by the executor (pipeline/runner/executors.py) for the read stage's progress bar: pipeline/read/progress.py
    progress_folder: str | None = None
    progress_reader = 0
    progress: ReadProgress | None = None

    def _setup(self, files: list[str], rejected_folder: str):
        self.files, self.rejected_folder = list(files), rejected_folder
        self.rejected = None

    def checked_document(self, record, filepath: str, index: int, where: str):
        problem = text_problem(record, self.text_key)
        if problem:
            shown = record if problem != "text_not_a_string" else {**record, self.text_key: repr(record[self.text_key])}
            self.rejected.add(where, problem, shown, self.field_detail(record) if problem == "missing_text" else "")
            return None
        return self.get_document_from_dict(record, filepath, index)

    def field_detail(self, record: dict) -> str:
        """Which field was looked for and which the record has: a wrong --text-key shows on every line."""
        fields = ", ".join(repr(key) for key in list(record)[:8]) or "none"
        return f"no {self.text_key!r} field (--text-key {self.text_key}); its fields: {fields}"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        self.rejected = RejectedRecords(self, self.rejected_folder, rank, self.source)
        self.progress = ReadProgress(self.progress_folder, rank, self.progress_reader)
        try:
            for document in self.read_files_shard(contiguous_block(self.files, rank, world_size)):
                self.update_doc_stats(document)
                self.progress.document()
                yield document
        finally:
            self.rejected.close()
            self.progress.write()


class CheckedJsonlReader(_CheckedFileReader, JsonlReader):
    """JSON Lines (.jsonl, .jsonl.gz, .jsonl.zst), one document per line; bad lines are skipped and kept."""

    name = "🐿 Jsonl (checked)"
    source = "jsonl"

    def __init__(self, data_folder, files: list[str], rejected_folder: str, text_key: str = "text", **kwargs):
        super().__init__(data_folder, text_key=text_key, **kwargs)
        self._setup(files, rejected_folder)

    def read_file(self, filepath: str):
        import orjson

        shown_path = self.data_folder.resolve_paths(filepath)
        line_number = 0
        try:
            with open_input(self.data_folder, filepath, self.compression) as f:  # (a cut .zst raises too)
                if self.progress:
                    self.progress.start_file(self.data_folder, filepath, f)
                # BufferedReader: the zstd stream cannot be iterated by lines on its own. A line over the bound
                # (a few KB of gzip can hold a 1 GiB line) is read past in pieces and skipped, never held whole.
                for line_number, raw in enumerate(bounded_lines(io.BufferedReader(f)), start=1):
                    if raw is None:
                        self.rejected.add(f"{shown_path}:{line_number}", "too_large", None,
                                          f"a line of more than {MAX_RECORD_BYTES:,} bytes")
                        continue
                    if not raw.strip():
                        continue  # blank lines (e.g. at the end of a file) are not records
                    where = f"{shown_path}:{line_number}"
                    with self.track_time():
                        try:
                            text = raw.decode("utf-8")
                        except UnicodeDecodeError as e:
                            shown = raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
                            self.rejected.add(where, "invalid_utf8", shown, str(e))
                            continue
                        try:
                            record = orjson.loads(text)
                        except orjson.JSONDecodeError as e:
                            self.rejected.add(where, "malformed_json", text.rstrip("\n"), str(e))
                            continue
                        document = self.checked_document(record, filepath, line_number - 1, where)
                    if document:
                        yield document
        except (EOFError, OSError) as e:  # truncated/corrupt compressed file: keep what was read
            self.rejected.add(f"{shown_path}:{line_number + 1}", "corrupt_file", None, f"{type(e).__name__}: {e}")
        if self.progress:
            self.progress.end_file()


class CheckedParquetReader(_CheckedFileReader, ParquetReader):
    """Parquet files (FineWeb's format), one document per row; rows without usable text are skipped and kept."""

    name = "📒 Parquet (checked)"
    source = "parquet"

    def __init__(self, data_folder, files: list[str], rejected_folder: str, text_key: str = "text", **kwargs):
        super().__init__(data_folder, text_key=text_key, **kwargs)
        self._setup(files, rejected_folder)

    def read_file(self, filepath: str):
        import pyarrow
        import pyarrow.parquet as pq

        shown_path = self.data_folder.resolve_paths(filepath)
        row = 0
        try:
            with self.data_folder.open(filepath, "rb") as f, pq.ParquetFile(f) as parquet:
                if self.progress:
                    self.progress.start_file(self.data_folder, filepath)
                for batch in parquet.iter_batches(batch_size=self.batch_size):
                    if self.progress:  # (random access: the part of the rows read, not the file position)
                        self.progress.fraction((row + batch.num_rows) / max(parquet.metadata.num_rows, 1))
                    with self.track_time("batch"):
                        documents = []
                        for record in batch.to_pylist():
                            document = self.checked_document(record, filepath, row, f"{shown_path}:row {row}")
                            row += 1
                            if document:
                                documents.append(document)
                    yield from documents
        except (pyarrow.ArrowException, OSError) as e:  # not parquet, or truncated: keep what was read
            self.rejected.add(f"{shown_path}:row {row}", "corrupt_file", None, f"{type(e).__name__}: {e}")
        if self.progress:
            self.progress.end_file()


class _PackagedCorpusReader(PipelineStep):
    """A corpus in one file shipped by a package: every task reads the whole file into records (small: a few MB)
    and makes documents of its contiguous block of them, so task order = record order."""

    type = "📖 - READER"
    source = "sample"  # the name of its rejected/ file

    def __init__(self, path: str, rejected_folder: str):
        super().__init__()
        self.path, self.rejected_folder = path, rejected_folder

    @abstractmethod
    def records(self, rejected: RejectedRecords) -> list:
        """Every record of the packaged file, in order (the same list in every task)."""

    @abstractmethod
    def document(self, index: int, record, rejected: RejectedRecords) -> Document | None:
        """The document of record `index`, or None after recording why it was skipped in `rejected`."""

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        rejected = RejectedRecords(self, self.rejected_folder, rank, self.source)
        try:
            records = self.records(rejected)
            start = rank * len(records) // world_size
            for offset, record in enumerate(contiguous_block(records, rank, world_size)):
                document = self.document(start + offset, record, rejected)
                if document:
                    self.update_doc_stats(document)
                    yield document
        finally:
            rejected.close()


class WikiSummariesReader(_PackagedCorpusReader):
    """The `sample` corpus: a JSON object {title: {"title", "extract", ...}}; each extract is one document."""

    name = "📚 Wikipedia lead sections"

    def records(self, rejected: RejectedRecords) -> list:
        with open(self.path, encoding="utf-8") as f:
            return list(json.load(f).items())

    def document(self, index: int, record, rejected: RejectedRecords) -> Document | None:
        title, entry = record
        problem = text_problem(entry, "extract")
        if problem:
            rejected.add(f"{self.path}:{title}", problem, entry)
            return None
        metadata = {key: value for key, value in entry.items() if key != "extract"}
        return Document(text=entry["extract"], id=f"{index}:{title}", metadata=metadata)


# The `sample-zh` corpus: People's Daily, January 1998, as word-segmented and POS-tagged by Peking University
# ("迈向/v  充满/v  希望/n  的/u ..."), one paragraph a line, without the article ids of the original release.
_FULLWIDTH_ALNUM = {code: code - 0xFEE0 for start, end in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))
                    for code in range(start, end + 1)}
_NUMBER_MARKS = re.compile(r"(?<=[0-9])．(?=[0-9])|(?<=[0-9])％")
_CONTINUES = re.compile(r"[，、；：]$|[。！？]")  # a sentence in it, or a line that runs on: not a headline
_LIST_ITEM = re.compile(r"^(（?[一二三四五六七八九十0-9]+[）、．.]|[①-⑩])")
_ENDS_SENTENCE = re.compile(r"[。！？…”’』」）)]$")


def untag_segmented_line(line: str) -> str:
    """`迈向/v  充满/v  希望/n` -> `迈向充满希望`: the words without their tags, joined without spaces as Chinese is
    written; full-width digits and Latin letters (and the ．/％ of numbers) become ASCII, as web text writes them,
    so that one tokenizer does not learn two sets of digits. Full-width Chinese punctuation stays."""
    text = "".join(word.rsplit("/", 1)[0] for word in line.split())
    return _NUMBER_MARKS.sub(lambda m: "." if m.group() == "．" else "%", text.translate(_FULLWIDTH_ALNUM))


def _is_headline(paragraph: str) -> bool:
    return not (_CONTINUES.search(paragraph) or _LIST_ITEM.match(paragraph)
                or (paragraph.startswith("（") and paragraph.endswith("）")))  # a photo credit or byline


def split_articles(paragraphs: list[str]) -> list[list[str]]:
    """Articles from paragraphs, since the file lost the article ids: a new article starts at a headline (a short
    line with no sentence in it: not a list item, not a bracketed credit) that follows a paragraph ending a
    sentence. Headline, subtitle and byline lines in a row stay together with the text after them."""
    articles, current, after_text = [], [], False
    for paragraph in paragraphs:
        headline = _is_headline(paragraph)
        if headline and after_text and current:
            articles.append(current)
            current = []
        current.append(paragraph)
        after_text = bool(_ENDS_SENTENCE.search(paragraph)) and (not headline or paragraph.endswith("…"))  # a poem's end
    return articles + ([current] if current else [])


class SegmentedNewsReader(_PackagedCorpusReader):
    """Word-segmented news (`word/tag` tokens, one paragraph a line) as running text, one document per article."""

    name = "📰 People's Daily 1998-01 (untagged)"
    source = "sample-zh"

    def records(self, rejected: RejectedRecords) -> list:
        paragraphs = []
        with open(self.path, "rb") as f:
            for line_number, raw in enumerate(f, start=1):
                try:
                    paragraph = untag_segmented_line(raw.decode("utf-8"))
                except UnicodeDecodeError as e:
                    rejected.add(f"{self.path}:{line_number}", "invalid_utf8", raw.decode("utf-8", "replace"), str(e))
                    continue
                if paragraph:
                    paragraphs.append(paragraph)
        return split_articles(paragraphs)

    def document(self, index: int, record, rejected: RejectedRecords) -> Document | None:
        return Document(text="\n".join(record), id=f"199801-{index:05d}", metadata={"title": record[0]})


class LimitDocuments(PipelineStep):
    """Pass at most `limit` documents in total: the limit is split evenly between the tasks."""

    name = "✂ Limit"
    type = "🔢 - COUNTER"

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        quota = self.limit // world_size + (1 if rank < self.limit % world_size else 0)
        try:
            if quota == 0:
                return
            for passed, document in enumerate(data, start=1):
                yield document
                if passed >= quota:
                    return
        finally:
            if hasattr(data, "close"):
                data.close()  # lets the reader finish now (e.g. close its rejected/ file)


def exclusion_writer(folder: str) -> JsonlWriter:
    """Where a step writes the documents it drops: `<rank>.jsonl.gz` in `folder` (the report's `excluded/`)."""
    return JsonlWriter(folder, output_filename="${rank}.jsonl.gz", compression="gzip")
