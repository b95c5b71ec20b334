"""Tokenizers: `get_tokenizer(spec)` resolves a --tokenizer value once into a `Tokenizer` (tokenizer.py); a trained
tokenizer is a folder (folder.py) made by `python -m pipeline.tokenizer train` (train.py, cli.py); prepare's side of
`--tokenizer NAME|PATH|train` is plan.py; tiktoken names are encodings.py."""
from pipeline.tokenizer.tokenizer import (COPY_DIR, Tokenizer, get_tokenizer, same_tokenizer, shard_folder_tokenizer,
                                          stored_tokenizer, tokenizer_label)

__all__ = ["COPY_DIR", "Tokenizer", "get_tokenizer", "same_tokenizer", "shard_folder_tokenizer", "stored_tokenizer",
           "tokenizer_label"]
