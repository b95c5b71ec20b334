"""`python -m pipeline.tokenizer train|show`: train a BPE tokenizer folder on a corpus, or check and show one.

    python -m pipeline.tokenizer train --input 'mydata/*.jsonl.gz' --vocab-size 32768 --output tokenizers/mine
    python -m pipeline.tokenizer train --corpus sample --vocab-size 8192 --output tokenizers/wiki8k
    python -m pipeline.tokenizer show tokenizers/mine --text '我们今天去公园。We went to the park.'

`train` reads documents the way `pipeline.prepare` does (the same --corpus/--input/--text-key), as they are: to
train on cleaned and deduplicated text, let prepare train it (`pipeline.prepare --tokenizer train --vocab-size N`).
"""
import argparse
import sys
import tempfile
from typing import Iterator

from gptstack.cli_args import ArgumentParser
from gptstack.errors import GPTStackError, InputError, exit_with_error
from gptstack.formats import seed_argument
from pipeline.read.corpora import SourceOptions, corpus_readers
from pipeline.tokenizer.folder import load_tokenizer_folder
from pipeline.tokenizer.train import (DEFAULT_MAX_CHARS, DEFAULT_PATTERN, DEFAULT_SEED, PATTERNS, TrainSettings,
                                      train_tokenizer)

RAW_HTML_CORPORA = ("commoncrawl",)  # their documents are web pages that only the cleaning recipe turns into text


def corpus_texts(corpus: str, input_path: str | None, text_key: str, subset: str | None = None,
                 hub_mirror: str | None = None) -> Iterator[str]:
    """The texts of a corpus, read in one process through prepare's own (checked) datatrove readers."""
    if corpus in RAW_HTML_CORPORA:
        raise InputError(f"--corpus {corpus}: raw web pages must be cleaned first; train with "
                         f"`python -m pipeline.prepare --corpus {corpus} --tokenizer train --vocab-size N` instead")
    with tempfile.TemporaryDirectory(prefix="tokenizer-rejected-") as rejected:
        steps = corpus_readers(corpus, SourceOptions(input=input_path, subset=subset, hub_mirror=hub_mirror,
                                                     text_key=text_key), rejected)
        documents = None
        for step in steps:  # datatrove readers pass earlier documents through, then yield their own
            documents = step.run(documents, rank=0, world_size=1)
        for document in documents or ():
            yield document.text


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m pipeline.tokenizer", description=__doc__.split("\n\n")[0],
                            epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a byte-level BPE tokenizer folder")
    train.add_argument("--corpus", default=None, help="a pipeline.prepare corpus (default: local with --input, "
                                                      "else sample)")
    train.add_argument("--input", help="files for --corpus local: .jsonl, .jsonl.gz, .jsonl.zst, .parquet (a file, "
                                       "a folder or a quoted glob)")
    train.add_argument("--subset", help="Hub corpora: as in pipeline.prepare")
    train.add_argument("--hub-mirror", help="Hub corpora: as in pipeline.prepare")
    train.add_argument("--text-key", default="text", help="field holding the text (default: text)")
    train.add_argument("--vocab-size", type=int, required=True,
                       help="ids in all, the 8 special tokens included; at most 65,536 (uint16 shards)")
    train.add_argument("--output", required=True, help="the tokenizer folder to create, e.g. tokenizers/zh-en-32k")
    train.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS,
                       help="train on a seeded sample of at most this many characters "
                            f"(default: {DEFAULT_MAX_CHARS:,})")
    train.add_argument("--seed", type=seed_argument, default=DEFAULT_SEED,
                       help=f"seed of the sample, 0..2**63-1 (default: {DEFAULT_SEED})")
    train.add_argument("--pattern", default=DEFAULT_PATTERN, choices=list(PATTERNS),
                       help=f"split pattern (default: {DEFAULT_PATTERN}, GPT-4's; see docs/tokenizer.md)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    show = commands.add_parser("show", help="verify a tokenizer folder and show what it does to a text")
    show.add_argument("folder")
    show.add_argument("--text", default="中文分词器：我们今天去公园。The tokenizer splits text into tokens.",
                      help="the text to split (default: a Chinese and English sentence)")
    args = parser.parse_args(argv)
    if args.command == "train":
        args.corpus = args.corpus or ("local" if args.input else "sample")
    return args


def run_train(args: argparse.Namespace) -> None:
    settings = TrainSettings(vocab_size=args.vocab_size, pattern=args.pattern, max_chars=args.max_chars,
                             seed=args.seed)
    settings.check()
    from pathlib import Path

    if Path(args.output).exists():
        raise InputError(f"--output {args.output}: already exists; choose another name or delete it")
    source = f"--corpus {args.corpus}" + (f" --input {args.input}" if args.input else "")
    texts = corpus_texts(args.corpus, args.input, args.text_key, args.subset, args.hub_mirror)
    folder = train_tokenizer(texts, settings, args.output, source, progress=not args.no_progress)
    training = folder.meta["training"]
    print(f"wrote {folder.path}/: {folder.vocab_size:,} ids (end-of-text {folder.eot_token}), pattern "
          f"{settings.pattern}, trained on {training['documents']:,} of {training['documents_seen']:,} documents "
          f"({training['chars']:,} characters)")


def run_show(args: argparse.Namespace) -> None:
    folder = load_tokenizer_folder(args.folder)
    encoding = folder.encoding()
    ids = encoding.encode_ordinary(args.text)
    print(f"{folder.path}/: verified; {folder.vocab_size:,} ids, end-of-text {folder.eot_token}, pattern "
          f"{folder.meta['pattern_name']}, sha256 {folder.sha256[:16]}")
    print(f"{len(args.text)} characters, {len(args.text.encode())} bytes -> {len(ids)} tokens:")
    # a token that is part of a character (a byte of a Chinese character) shows as its bytes, e.g. \xe4
    print(" | ".join(encoding.decode_single_token_bytes(i).decode("utf-8", "backslashreplace") for i in ids))


def main(argv=None) -> None:
    try:
        args = parse_args(argv)
        (run_train if args.command == "train" else run_show)(args)
    except GPTStackError as error:
        exit_with_error(error)


if __name__ == "__main__":
    main(sys.argv[1:])
