"""Deduplication between cleaning and shuffling: exact (normalised text), URL, and MinHash near-duplicates.

Four runs of the executor, each depending on the one before (datatrove's MinHash stages, FineWeb's configuration):

    signatures  (one task per stage file)  ids, exact and URL hashes, MinHash signatures      dedup/signatures/
    buckets     (one task per MinHash bucket, + one for exact, + one for URL)  duplicate pairs  dedup/pairs/
    clusters    (one task)  union-find over all pairs; the earliest document of a cluster is kept  dedup/clusters/
    filter      (one task per stage file)  kept documents -> dedup/documents/, the others -> dedup/removed/
                with metadata duplicate_of (the kept document's id), duplicate_of_position, dedup_reason

The stages are built here; steps.py holds the steps, config.py the configuration (a recipe's `dedup:` section),
rehydrate.py FineWeb-2's rehydration.
"""
import argparse
from pathlib import Path

from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets, MinhashDedupSignature
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig

from pipeline.dedup.config import ALREADY_DEDUPLICATED_CORPORA, DedupConfig, dedup_enabled, parse_dedup_section
from pipeline.dedup.steps import REASONS, ContentSignatures, DedupClusters, DedupFilter, DocumentIds, read_summary
from pipeline.runner.stages import SplitByRank, Stage, StageReader, stage_record, stage_writer

DEDUP_FILTER_STAGE = "dedup-filter"
DUPLICATES_FOLDER = "duplicates"  # in the output folder: every removed document, with the id of the one kept
# An exact or URL hash is a "MinHash bucket" of two 60-bit hashes: datatrove's bucket step then pairs equal ones.
CONTENT_HASH_CONFIG = MinhashConfig(num_buckets=1, hashes_per_bucket=2, hash_config=HashConfig(precision=64))


def add_dedup_arguments(group) -> None:
    """--dedup/--no-dedup, into an argparse parser or argument group."""
    group.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=None,
                       help="remove exact duplicates (normalised text), documents of an already seen URL and near "
                            "duplicates (MinHash, FineWeb's settings; a recipe's `dedup:` section changes them); "
                            "every removed document is kept in OUTPUT/duplicates/ with the id of the one kept. "
                            "Default: on, except for the Hub corpora (fineweb, fineweb-edu, fineweb-2, "
                            "fineweb-edu-chinese, cci3-hq), which were deduplicated when they were made")


def word_tokenizer(language: str):
    """The word split MinHash shingles are made of: datatrove's tokenizer for the language, through the shared,
    faster spaCy path that gives identical words (pipeline/clean/words.py)."""
    from pipeline.clean.words import SharedWordTokenizer

    return SharedWordTokenizer(language)


def minhash_signature(config: DedupConfig, folder: str) -> MinhashDedupSignature:
    """datatrove's MinHash signature step; with `per_language`, the words of each document come from the word
    tokenizer of its own language (configs/fineweb2: `cmn_Hani`'s jieba for `zh`), as FineWeb-2 deduplicates each
    language with its own tokenizer."""
    if not config.per_language:
        return MinhashDedupSignature(folder, config=config.minhash_config(), language=word_tokenizer(config.language))
    from pipeline.clean.languages import load_languages

    codes = {label: values.code for label, values in load_languages().items()}
    return LanguageMinhashSignature(folder, config=config.minhash_config(),
                                    language=word_tokenizer(config.language), codes=codes)


class LanguageMinhashSignature(MinhashDedupSignature):
    """MinhashDedupSignature whose word tokenizer follows each document's `metadata.language` (its own code for
    the languages it has no tokenizer for). Pairs across languages need the same words, so in practice only
    documents of one language are paired, as in FineWeb-2's per-language dedup.

    A language's tokenizer is built when its first document arrives: a run keeps only some languages, and the
    others' tokenizers may need packages this machine lacks (Korean's kiwipiepy is an optional extra). Cleaning
    has already checked the tokenizer of every language it lets through."""

    def __init__(self, output_folder: str, config, language, codes: dict[str, str]):
        super().__init__(output_folder=output_folder, config=config, language=language)
        self.default_tokenizer, self.codes, self.tokenizers = self.word_tokenizer, dict(codes), {}

    def tokenizer_for(self, label: str | None):
        if label not in self.codes:
            return self.default_tokenizer
        if label not in self.tokenizers:
            self.tokenizers[label] = word_tokenizer(self.codes[label])
        return self.tokenizers[label]

    def run(self, data, rank: int = 0, world_size: int = 1):
        def choosing_tokenizer(documents):
            for document in documents:  # get_shingles(document.text) runs right after each document arrives
                self.word_tokenizer = self.tokenizer_for(document.metadata.get("language"))
                yield document

        return super().run(choosing_tokenizer(data), rank, world_size)


def dedup_stages(config: DedupConfig, input_folder, folder, tasks: int) -> list[Stage]:
    """The four dedup stages over the `tasks` stage files in `input_folder`; kept documents end up in
    `folder/documents/<rank>.jsonl.zst`, removed ones in `folder/removed/<rank>.jsonl.gz`."""
    folder = Path(folder)
    signatures, pairs, clusters = folder / "signatures", folder / "pairs", folder / "clusters"
    documents, removed = folder / "documents", folder / "removed"
    minhash = config.minhash_config()

    signing = [StageReader(input_folder), DocumentIds(str(signatures / "ids"))]
    signing += [ContentSignatures(str(signatures / kind), kind) for kind in ("exact", "url") if getattr(config, kind)]
    if config.minhash:
        signing.append(minhash_signature(config, str(signatures / "near")))
    jobs = []
    if config.minhash:
        jobs.append((MinhashDedupBuckets(str(signatures / "near"), str(pairs / "near"), config=minhash),
                     config.num_buckets))
    jobs += [(MinhashDedupBuckets(str(signatures / kind), str(pairs / kind), config=CONTENT_HASH_CONFIG), 1)
             for kind in ("exact", "url") if getattr(config, kind)]
    pair_folders = {reason: str(pairs / reason) for reason in REASONS
                    if getattr(config, "minhash" if reason == "near" else reason)}
    settings = config.as_dict()
    set_aside = JsonlWriter(str(removed), "${rank}.jsonl.gz", adapter=stage_record)  # -> OUTPUT/duplicates/
    return [
        Stage("dedup-signatures", signing, tasks, [signatures], settings),
        Stage("dedup-buckets", [SplitByRank(jobs)], sum(n for _, n in jobs), [pairs], settings),
        Stage("dedup-clusters", [DedupClusters(pair_folders, str(signatures / "ids"), str(clusters), tasks)], 1,
              [clusters], settings),
        Stage(DEDUP_FILTER_STAGE, [StageReader(input_folder),
                               DedupFilter(str(clusters), set_aside),
                               stage_writer(documents)],
              tasks, [documents, removed], settings),
    ]


def dedup_report(config: DedupConfig | None, folder) -> dict:
    """The manifest's `dedup` section: off, or the settings and what the stages in `folder` removed."""
    if config is None:
        return {"enabled": False}
    summary = read_summary(Path(folder) / "clusters")
    return {"enabled": True, "config": config.as_dict(), "removed": summary["removed"],
            "clusters": summary["clusters"], "removed_documents": f"{DUPLICATES_FOLDER}/"}


__all__ = ["DedupConfig", "parse_dedup_section", "dedup_enabled", "dedup_stages", "dedup_report", "read_summary",
           "add_dedup_arguments", "ALREADY_DEDUPLICATED_CORPORA", "REASONS"]
