"""Deduplication between cleaning and shuffling: exact (normalised text), URL, and MinHash near-duplicates
(stages.py builds the executor's stages; steps.py, config.py, rehydrate.py)."""
from pipeline.dedup.config import ALREADY_DEDUPLICATED_CORPORA, DedupConfig, dedup_enabled, parse_dedup_section
from pipeline.dedup.stages import (CONTENT_HASH_CONFIG, DEDUP_FILTER_STAGE, DUPLICATES_FOLDER,
                                   LanguageMinhashSignature, add_dedup_arguments, dedup_report, dedup_stages,
                                   minhash_signature, word_tokenizer)
from pipeline.dedup.steps import REASONS, read_summary

__all__ = ["ALREADY_DEDUPLICATED_CORPORA", "CONTENT_HASH_CONFIG", "DEDUP_FILTER_STAGE", "DUPLICATES_FOLDER",
           "DedupConfig", "LanguageMinhashSignature", "REASONS", "add_dedup_arguments", "dedup_enabled",
           "dedup_report", "dedup_stages", "minhash_signature", "parse_dedup_section", "read_summary",
           "word_tokenizer"]
