"""The dedup steps of our own; datatrove's MinhashDedupSignature and MinhashDedupBuckets do the rest.

A document is known by its *position* (rank, index): the task of the stage before dedup that wrote it, and its
line in that task's file. Positions order the corpus the same way for any number of tasks, so "keep the earliest
document of every group of duplicates" gives the same output for any number of tasks (datatrove's own cluster step
keeps whichever document union-by-size happens to pick, which depends on how the input was split).

Signatures (one run, one task per stage file, every step passes documents on):
    DocumentIds            `ids/<rank>.ids`: document ids, one JSON string per line, to name the kept documents
    ContentSignatures      a 120-bit hash of the normalised text (exact) or of the normalised URL (url), written
                           like a MinHash bucket of 2 hashes so datatrove's MinhashDedupBuckets pairs equal ones
    MinhashDedupSignature  datatrove's, FineWeb's configuration
Buckets: datatrove's MinhashDedupBuckets, one task per MinHash bucket plus one each for exact and URL hashes.
Clusters: `DedupClusters`, one task: union-find over every pair found, the earliest document of a cluster is kept.
Filter: `DedupFilter`, one task per stage file: drops the others and writes each aside with the id of the kept one.
"""
import hashlib
import json
import struct
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.binaryio import read_tuples_from_file
from datatrove.utils.text import TextNormConfig, simplify_text
from datatrove.utils.typeshelper import StatHints

from gptstack.files import atomic_file, atomic_write
from pipeline.clean.steps import count_by_language

# Reasons, in the order their pairs are merged: a document's reason is the first kind of match that joined it.
REASONS = ("exact", "url", "near")
HASH_BITS_MASK = (1 << 60) - 1  # datatrove's bucket reader stops at hashes >= 2**61 - 1: keep each part below
EXACT_NORMALISATION = TextNormConfig(lowercase=True, norm_whitespace=True, remove_punctuation=False,
                                     norm_unicode_diacritics=False, norm_numbers=False)
SIGNATURE_FILE = "bucket_000/{rank:05d}.minhash.sig"  # the layout MinhashDedupBuckets reads
SIGNATURE_DTYPE = np.dtype([("h0", "<u8"), ("h1", "<u8"), ("doc", "<u4")])


def json_line(value) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode()


def ids_path(folder, rank: int) -> Path:
    return Path(folder) / f"{rank:05d}.ids"


def cluster_sizes_path(folder, rank: int) -> Path:
    """{"index", "size"} per line: the kept documents of stage file `rank` that have duplicates, and how many
    documents their cluster held (FineWeb-2's `minhash_cluster_size`, for upsampling later)."""
    return Path(folder) / f"{rank:05d}.sizes.jsonl"


def removals_path(folder, rank: int) -> Path:
    return Path(folder) / f"{rank:05d}.removed.jsonl"


class DocumentIds(PipelineStep):
    """Pass documents on and write their ids, one JSON string per line, to `<rank>.ids`."""

    name = "🪪 Document ids"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder: str):
        super().__init__()
        self.output_folder = str(output_folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        path = ids_path(self.output_folder, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as f:
            for document in data:
                f.write(json_line(str(document.id)))
                yield document


def normalised_text(text: str) -> str:
    """What exact dedup compares: the text lower-cased, with every run of whitespace made one space."""
    return simplify_text(text, EXACT_NORMALISATION)


def normalised_url(url) -> str | None:
    """What URL dedup compares: scheme and host lower-cased, the #fragment dropped; None without a URL."""
    if not isinstance(url, str) or not url.strip():
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an invalid IPv6 host: compare the URL as written
        return url.strip()
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, ""))


def content_hash(value: str) -> tuple[int, int]:
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    high, low = struct.unpack("<QQ", digest)
    return high & HASH_BITS_MASK, low & HASH_BITS_MASK


class ContentSignatures(PipelineStep):
    """Pass documents on and write a sorted hash of each one's normalised text (`kind="exact"`) or URL
    (`kind="url"`; documents without `metadata.url` get none) as a one-bucket, two-hash MinHash signature file."""

    name = "#️⃣ Content signatures"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder: str, kind: str):
        super().__init__()
        if kind not in ("exact", "url"):
            raise ValueError(f"kind must be exact or url, not {kind!r}")
        self.output_folder, self.kind = str(output_folder), kind

    def value(self, document) -> str | None:
        if self.kind == "exact":
            return normalised_text(document.text)
        return normalised_url(document.metadata.get("url"))

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        high, low, index = [], [], []
        for position, document in enumerate(data):
            with self.track_time():
                value = self.value(document)
                if value is not None:
                    h0, h1 = content_hash(value)
                    high.append(h0)
                    low.append(h1)
                    index.append(position)
                self.stat_update("signed" if value is not None else "no_" + self.kind)
            yield document
        records = np.empty(len(index), dtype=SIGNATURE_DTYPE)
        records["h0"], records["h1"], records["doc"] = high, low, index
        records.sort(order=["h0", "h1", "doc"])
        path = Path(self.output_folder) / SIGNATURE_FILE.format(rank=rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, records.tobytes())


class UnionFind:
    """Groups of positions; the root of a group is always its smallest (= earliest) position."""

    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, node: int) -> int:
        root = node
        while (up := self.parent.get(root, root)) != root:
            root = up
        while node != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            low, high = min(root_a, root_b), max(root_a, root_b)
            self.parent[high] = low
            self.parent.setdefault(low, low)


def position(rank: int, index: int) -> int:
    return (rank << 32) | index


def split_position(node: int) -> tuple[int, int]:
    return node >> 32, node & 0xFFFFFFFF


class DedupClusters(PipelineStep):
    """Merge every duplicate pair into clusters and decide what each stage file loses (one task).

    Reads the `.dups` files of `pair_folders` ({reason: folder}, merged in REASONS order), keeps the earliest
    document of each cluster, and writes `<rank>.removed.jsonl` per stage file: one line per removed document, in
    index order, {"index", "reason", "kept_id", "kept_at": [rank, index]}, plus `summary.json`. Memory grows with the
    number of documents that have a duplicate, not with the corpus.
    """

    name = "🧩 Dedup clusters"
    type = "🫂 - DEDUP"

    def __init__(self, pair_folders: dict[str, str], ids_folder: str, output_folder: str, stage_tasks: int):
        super().__init__()
        self.pair_folders = {reason: str(folder) for reason, folder in pair_folders.items()}
        self.ids_folder, self.output_folder, self.stage_tasks = str(ids_folder), str(output_folder), stage_tasks

    def read_pairs(self, folder: str):
        data_folder = get_datafolder(folder)
        for name in data_folder.list_files(glob_pattern="*.dups"):
            with data_folder.open(name, "rb") as f:
                yield from read_tuples_from_file(f, "4I", lines_to_buffer=4096)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if world_size != 1:
            raise ValueError(f"{self.name} runs as one task, not {world_size}")
        clusters, reason_of = UnionFind(), {}
        with self.track_time():
            for reason in REASONS:
                if reason not in self.pair_folders:
                    continue
                code = REASONS.index(reason)
                for rank_a, index_a, rank_b, index_b in self.read_pairs(self.pair_folders[reason]):
                    a, b = position(rank_a, index_a), position(rank_b, index_b)
                    reason_of.setdefault(a, code)
                    reason_of.setdefault(b, code)
                    clusters.union(a, b)
                    self.stat_update(f"{reason}_pairs")
            removed_by_rank: dict[int, list[tuple[int, int, int]]] = {}
            kept_ids_needed: dict[int, set[int]] = {}
            for node in reason_of:
                root = clusters.find(node)
                if root != node:
                    removed_rank, removed_index = split_position(node)
                    removed_by_rank.setdefault(removed_rank, []).append((removed_index, root, reason_of[node]))
                    kept_rank, kept_index = split_position(root)
                    kept_ids_needed.setdefault(kept_rank, set()).add(kept_index)
            kept_ids = self.look_up_ids(kept_ids_needed)
            output = Path(self.output_folder)
            output.mkdir(parents=True, exist_ok=True)
            counts = dict.fromkeys(REASONS, 0)
            for stage_rank in range(self.stage_tasks):
                with atomic_file(removals_path(output, stage_rank)) as f:
                    for index, root, code in sorted(removed_by_rank.get(stage_rank, [])):
                        kept_at = split_position(root)
                        f.write(json_line({"index": index, "reason": REASONS[code], "kept_id": kept_ids[root],
                                           "kept_at": list(kept_at)}))
                        counts[REASONS[code]] += 1
                        self.stat_update(f"removed_{REASONS[code]}")
            sizes = Counter(clusters.find(node) for node in reason_of)  # root (the kept document) -> members
            for stage_rank in range(self.stage_tasks):
                with atomic_file(cluster_sizes_path(output, stage_rank)) as f:
                    for root in sorted(r for r in sizes if split_position(r)[0] == stage_rank):
                        f.write(json_line({"index": split_position(root)[1], "size": sizes[root]}))
            clusters_kept = len(sizes)
            atomic_write(output / "summary.json", json.dumps({"removed": counts, "clusters": clusters_kept,
                                                              "documents_in_clusters": len(reason_of)}))
        return
        yield

    def look_up_ids(self, needed: dict[int, set[int]]) -> dict[int, str]:
        """The ids of the kept documents, read by streaming each stage file's ids (only the needed ones are held)."""
        found = {}
        for stage_rank, indices in needed.items():
            with open(ids_path(self.ids_folder, stage_rank), encoding="utf-8") as f:
                for index, line in enumerate(f):
                    if index in indices:
                        found[position(stage_rank, index)] = json.loads(line)
        return found


def read_summary(clusters_folder) -> dict:
    return json.loads((Path(clusters_folder) / "summary.json").read_text())


class DedupFilter(PipelineStep):
    """Drop the documents `DedupClusters` marked for this task; write each aside with the id of the kept one
    (metadata `duplicate_of`, `duplicate_of_position` "rank/index" in the stage files, `dedup_reason`). Every kept
    document records the size of its duplicate cluster in `minhash_cluster_size` (1: no duplicate)."""

    name = "🧹 Dedup filter"
    type = "🫂 - DEDUP"

    def __init__(self, clusters_folder: str, exclusion_writer=None):
        super().__init__()
        self.clusters_folder, self.exclusion_writer = str(clusters_folder), exclusion_writer

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with open(removals_path(self.clusters_folder, rank), encoding="utf-8") as removals:
            upcoming = (json.loads(line) for line in removals)
            removal = next(upcoming, None)
            writer = self.exclusion_writer
            sizes_file = cluster_sizes_path(self.clusters_folder, rank)
            sizes = {}
            if sizes_file.exists():
                sizes = {entry["index"]: entry["size"] for entry in map(json.loads, sizes_file.open(encoding="utf-8"))}
            try:
                for index, document in enumerate(data):
                    self.stat_update(StatHints.total)
                    tokens_before = document.metadata.get("token_count")
                    if removal is not None and removal["index"] == index:
                        with self.track_time():
                            document.metadata.update(duplicate_of=removal["kept_id"], dedup_reason=removal["reason"],
                                                     duplicate_of_position="/".join(map(str, removal["kept_at"])))
                            self.stat_update(StatHints.dropped, f"dropped_{removal['reason']}")
                            count_by_language(self, document, tokens_before, removal["reason"])
                            if writer:
                                writer.write(document, rank)
                        removal = next(upcoming, None)
                        continue
                    document.metadata["minhash_cluster_size"] = sizes.get(index, 1)
                    self.stat_update(StatHints.forwarded)
                    self.update_doc_stats(document)  # (the cleaning report's row when dedup runs inside the recipe)
                    count_by_language(self, document, tokens_before, None)
                    yield document
            finally:
                if writer:
                    writer.close()
        if removal is not None:
            raise ValueError(f"{removals_path(self.clusters_folder, rank)}: names document {removal['index']} but "
                             f"task {rank} has fewer documents; the dedup stages' inputs changed")
