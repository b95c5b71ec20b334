"""Look at a shard folder: `python -m pipeline.inspect data/sample`.

Prints what the manifest says (shards, tokens, documents, tokenizer), checks every shard's header, size and
SHA-256 against it and that every token id is below the manifest's vocab_size, and decodes the first tokens of one
shard so you can read what the model will train on.
Exits with an `error:` line naming the file when a check fails.

`print_summary` is the report `pipeline.prepare` prints when it has written a folder, from the same manifest.
"""
import argparse
from pathlib import Path

from gptstack.cli_args import ArgumentParser
from gptstack.errors import GPTStackError, ShardError, exit_with_error
from pipeline.dedup.config import ALREADY_DEDUPLICATED_CORPORA
from pipeline.dedup.rehydrate import describe as describe_rehydration
from pipeline.read.readers import SKIP_REASONS
from pipeline.shards import file_sha256, open_shard, read_manifest
from pipeline.tokenizer import shard_folder_tokenizer


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m pipeline.inspect", description=__doc__.split("\n\n")[1],
                            epilog="examples:\n  python -m pipeline.inspect data/sample\n"
                                   "  python -m pipeline.inspect --data data/fineweb --shard train_000003.bin "
                                   "--tokens 100 --no-verify")
    parser.add_argument("directory", metavar="DIR", nargs="?",
                        help="a shard folder written by `python -m pipeline.prepare` (or give it as --data DIR)")
    parser.add_argument("--data", dest="data", metavar="DIR", help="the shard folder, as model.train names it")
    parser.add_argument("--shard", help="shard file to decode, e.g. train_000001.bin (default: the first one)")
    parser.add_argument("--tokens", type=int, default=300, help="how many tokens to decode (default: 300)")
    parser.add_argument("--offset", type=int, default=0, help="decode from this token position (default: 0)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the SHA-256 and token-id checks (quicker on a large folder; headers and sizes are "
                             "still checked)")
    args = parser.parse_args(argv)
    if (args.directory is None) == (args.data is None):
        parser.error("give the shard folder once: DIR or --data DIR")
    args.directory = args.directory or args.data
    return args


def check_shard(directory: Path, entry: dict, verify: bool, vocab_size: int | None = None) -> str | None:
    """What is wrong with one shard of the manifest, or None. With `verify`, also its SHA-256 and, given
    `vocab_size`, that every token id is inside the vocabulary (both read the whole file)."""
    path = directory / entry["file"]
    try:
        tokens = open_shard(path)
    except ShardError as error:
        return str(error)
    if len(tokens) != entry["tokens"]:
        return f"{path}: holds {len(tokens)} tokens, manifest says {entry['tokens']}"
    if verify and file_sha256(path) != entry["sha256"]:
        return f"{path}: SHA-256 differs from manifest.json (file changed or corrupt)"
    if verify and vocab_size:
        return token_range_problem(path, tokens, vocab_size)
    return None


def token_range_problem(path: Path, tokens, vocab_size: int, block: int = 1 << 24) -> str | None:
    """The first token id >= vocab_size, named with its position, or None. A checksum only proves the file is the
    one written; a tool that wrote ids of another tokenizer writes a valid checksum too, and an embedding lookup
    past the vocabulary crashes (or, on some GPUs, reads garbage) far into training. Read in blocks: a shard is a
    memory map, and max() over a block costs less than the SHA-256 already computed."""
    for start in range(0, len(tokens), block):
        part = tokens[start:start + block]
        if part.size and int(part.max()) >= vocab_size:
            position = start + int((part >= vocab_size).argmax())
            return (f"{path}: token id {int(tokens[position])} at position {position} is outside the vocabulary "
                    f"(vocab_size {vocab_size})")
    return None


def inspect(args: argparse.Namespace) -> None:
    directory = Path(args.directory)
    manifest = read_manifest(directory)
    print(f"{directory}/  tokenizer {manifest['tokenizer']} (vocab {manifest['vocab_size']:,}, end-of-text "
          f"{manifest['eot_token']}), {manifest['dtype']}, created {manifest.get('created', '?')}")
    print(f"  command: {manifest.get('command', '?')}")
    print(f"  {'file':18} {'split':5} {'documents':>11} {'tokens':>14}  check")
    problems = []
    for entry in manifest["shards"]:
        problem = check_shard(directory, entry, verify=not args.no_verify, vocab_size=manifest.get("vocab_size"))
        status = "BAD" if problem else ("ok" if not args.no_verify else "size ok")
        print(f"  {entry['file']:18} {entry['split']:5} {entry['documents']:>11,} {entry['tokens']:>14,}  {status}")
        if problem:
            problems.append(problem)
    totals = manifest["totals"]
    print(f"  {'total':18} {'':5} {totals['documents']:>11,} {totals['tokens']:>14,}  "
          f"({totals['shards']} shards)")
    skipped = manifest.get("skipped") or {}
    print(f"  skipped input records: {', '.join(f'{k} {v}' for k, v in skipped.items()) or 'none'}")
    if problems:
        raise ShardError(problems[0] + (f" (and {len(problems) - 1} more bad shards)" if len(problems) > 1 else ""))

    names = [entry["file"] for entry in manifest["shards"]]
    if not names:
        return
    name = args.shard or names[0]
    if name not in names:
        raise ShardError(f"{directory / name}: not a shard of this folder (shards: {', '.join(names[:5])}...)")
    tokens = open_shard(directory / name)[args.offset:args.offset + args.tokens]
    tokenizer = shard_folder_tokenizer(directory, manifest)
    if len(tokens) and int(tokens.max()) >= tokenizer.vocab_size:  # (--no-verify skipped the whole-folder check)
        raise ShardError(f"{directory / name}: token id {int(tokens.max())} in tokens {args.offset}.."
                         f"{args.offset + len(tokens)} is outside tokenizer {tokenizer.label}'s "
                         f"{tokenizer.vocab_size:,} ids: cannot decode them")
    text = tokenizer.decode(tokens.tolist())
    print(f"\n--- {name}, tokens {args.offset}..{args.offset + len(tokens)} decoded "
          f"(<|endoftext|> separates documents) ---\n{text}\n---")


def print_summary(output: Path, manifest: dict) -> None:
    totals, skipped = manifest["totals"], manifest["skipped"]
    print(f"\nwrote {output}/ ({manifest['tokenizer']}, vocab {manifest['vocab_size']:,}, "
          f"end-of-text {manifest['eot_token']})")
    print(f"  {'split':6} {'shards':>6} {'documents':>11} {'tokens':>14}")
    for split in ("val", "train"):
        count = sum(1 for s in manifest["shards"] if s["split"] == split)
        print(f"  {split:6} {count:>6} {totals[split + '_documents']:>11,} {totals[split + '_tokens']:>14,}")
    print(f"  {'total':6} {totals['shards']:>6} {totals['documents']:>11,} {totals['tokens']:>14,}")
    if "cleaning" in manifest:
        documents = manifest["cleaning"]["documents"]
        print(f"  cleaning ({manifest['cleaning']['recipe']}, languages {manifest['cleaning']['languages']}): "
              f"{documents['read']:,} documents read, {documents['kept']:,} kept, {documents['dropped']:,} dropped, "
              f"{documents['failed']:,} failed; report: {output}/cleaning/report.md")
    if manifest["dedup"]["enabled"]:
        removed = manifest["dedup"]["removed"]
        listed = ", ".join(f"{reason} {count:,}" for reason, count in removed.items())
        print(f"  dedup: removed {sum(removed.values()):,} duplicates ({listed})"
              + (f"; kept in {output}/duplicates/ with the id of the document kept" if any(removed.values()) else ""))
    else:
        print("  dedup: off" + (" (--dedup turns it on)" if manifest["corpus"] in ALREADY_DEDUPLICATED_CORPORA else ""))
    if "rehydration" in manifest:
        print("  " + describe_rehydration(manifest["rehydration"]))
    print(f"  shuffle: seed {manifest['shuffle']['seed']}")
    seconds = max(manifest["tokenize_seconds"], 0.01)
    print(f"  tokenize: {seconds:.1f} s, {totals['documents'] / seconds:,.0f} docs/s, "
          f"{totals['tokens'] / seconds:,.0f} tokens/s"
          + (" (resumed: stages and tasks an interrupted run had finished were reused)" if manifest["resumed"] else ""))
    executor = manifest.get("executor")
    if executor:
        print(f"  executor: {executor['name']}, {executor['tasks']} tasks, "
              f"{executor['workers'] or 'all'} at a time")
    print("  stages: " + ", ".join(f"{name} {secs:.1f} s" for name, secs in manifest["stage_seconds"].items()))
    if skipped:
        listed = ", ".join(f"{SKIP_REASONS.get(reason, reason)}: {count}" for reason, count in sorted(skipped.items()))
        print(f"  skipped {sum(skipped.values())} records ({listed}); kept in {output}/rejected/")
    else:
        print("  skipped records: none")


def main(argv: list[str] | None = None) -> None:
    try:
        inspect(parse_args(argv))
    except GPTStackError as error:
        exit_with_error(error)


if __name__ == "__main__":
    main()
