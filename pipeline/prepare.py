"""Turn a corpus into verified uint16 token shards: `python -m pipeline.prepare --corpus sample`.

    read (datatrove reader, bad records skipped and kept)  ->  tokenize (tiktoken, one stream per task)
        ->  pack (val_000000.bin, train_000001.bin, ...)  ->  commit (shards renamed in, manifest.json last)

Everything is first written inside OUTPUT/.prepare-work/; an earlier finished output in OUTPUT stays valid until
the final commit, which only renames files. Interrupted? Run the same command again: finished datatrove tasks are
not redone.
"""
import argparse
import json
import os
import shlex
import shutil
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from pipeline.corpora import CORPORA, SourceOptions, corpus_readers
from pipeline.errors import GPTStackError, InputError, exit_with_error
from pipeline.pack import VAL_MAX_FRACTION, pack_shards
from pipeline.readers import SKIP_REASONS, LimitDocuments
from pipeline.shards import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, read_manifest, write_manifest
from pipeline.tokenize_step import TokenizeToStream, usable_cpus
from pipeline.tokenizer import check_fits_uint16, get_encoding

WORK_FOLDER = ".prepare-work"
SHARD_GLOB = "*_[0-9][0-9][0-9][0-9][0-9][0-9].bin"


def parse_args(argv=None) -> argparse.Namespace:
    corpora = "\n".join(f"  {name:12} {corpus.description}" for name, corpus in CORPORA.items())
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.prepare",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Tokenize a corpus into uint16 shards (llm.c format) plus manifest.json.",
        epilog=f"corpora:\n{corpora}\n\nexamples:\n"
               "  python -m pipeline.prepare                              # the offline sample corpus\n"
               "  python -m pipeline.prepare --corpus fineweb-edu --subset sample-10BT --workers 16\n"
               "  python -m pipeline.prepare --input 'my_data/*.jsonl.gz' --output data/mine\n")
    parser.add_argument("--corpus", default=None,
                        help="corpus to prepare (default: sample, or local when --input is given)")
    parser.add_argument("--input", help="local files for --corpus local: a file, a folder (searched recursively) or "
                                        "a quoted glob; .jsonl, .jsonl.gz, .jsonl.zst, .parquet")
    parser.add_argument("--subset", help="Hub corpora: sample-10BT / sample-100BT / sample-350BT or a Common "
                                         "Crawl dump such as CC-MAIN-2024-10 (default: sample-10BT)")
    parser.add_argument("--hub-mirror", metavar="DIR",
                        help="Hub corpora: read a local copy laid out like the Hub repository (e.g. made by "
                             "`huggingface-cli download HuggingFaceFW/fineweb --repo-type dataset "
                             "--include 'sample/10BT/*' --local-dir DIR`) instead of streaming hf://datasets/...")
    parser.add_argument("--text-key", default="text", help="field of a jsonl/parquet record holding the text "
                                                           "(default: text)")
    parser.add_argument("--output", help="output folder (default: data/<corpus>)")
    parser.add_argument("--shard-tokens", type=int, default=100_000_000,
                        help="tokens per train shard; the last shard holds the rest (default: 100,000,000)")
    parser.add_argument("--val-tokens", type=int, default=10_000_000,
                        help="tokens of the validation shard val_000000.bin, taken as whole documents from the "
                             f"start of the corpus, but never more than {VAL_MAX_FRACTION * 100:.0f}%% of the "
                             "corpus so a small corpus still trains on most of its text; 0 = no validation shard "
                             "(default: 10,000,000)")
    parser.add_argument("--tokenizer", default="gpt2",
                        help="tiktoken encoding; gpt2 works offline, others download; ids must fit uint16 "
                             "(default: gpt2)")
    parser.add_argument("--workers", type=int, default=1, help="processes running in parallel (default: 1)")
    parser.add_argument("--tasks", type=int, default=None,
                        help="datatrove tasks the input is split into (default: --workers); the shards come out "
                             "the same for any number of tasks unless --limit is used")
    parser.add_argument("--limit", type=int, default=None,
                        help="read at most this many documents (split evenly between tasks), for quick runs")
    args = parser.parse_args(argv)
    args.corpus = args.corpus or ("local" if args.input else "sample")
    args.tasks = args.tasks or args.workers
    for flag in ("shard_tokens", "workers", "tasks", "limit"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.val_tokens < 0:
        raise InputError(f"--val-tokens must be 0 or more, got {args.val_tokens}")
    if args.shard_tokens >= 2**31:
        raise InputError(f"--shard-tokens {args.shard_tokens} does not fit the shard header's int32 token count")
    return args


def check_existing_output(output: Path, tokenizer: str) -> None:
    """Refuse an output folder we must not write into (read-only checks)."""
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {output}: exists and is not a folder")
    if (output / MANIFEST_NAME).exists():
        existing = read_manifest(output)
        if existing.get("tokenizer") != tokenizer:
            raise InputError(f"--output {output}: holds shards of tokenizer {existing.get('tokenizer')!r}, not "
                             f"{tokenizer!r}; choose another folder or delete it")
    elif any(output.glob(SHARD_GLOB)) and not (output / WORK_FOLDER).is_dir():
        # (shards without a manifest next to our work folder: our own run stopped while committing; it may go on)
        raise InputError(f"--output {output}: holds shard files but no {MANIFEST_NAME}; choose another folder or "
                         "delete them")


def make_output_folder(output: Path) -> None:
    """Create the output folder and prove it is writable, before any real work."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(f"--output {output}: not writable ({e.strerror or e})") from None


def build_pipeline(readers: list, limit: int | None, tokenize: TokenizeToStream) -> list:
    """The stages every document goes through, in order (cleaning, dedup and shuffling will slot in here)."""
    return [*readers, *([LimitDocuments(limit)] if limit else []), tokenize]


def make_executor(pipeline: list, tasks: int, workers: int, logging_dir: str, resume: bool):
    """The one place that chooses how the pipeline runs (local processes now; Slurm/Ray later)."""
    from datatrove.executor import LocalPipelineExecutor

    return LocalPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir,
                                 skip_completed=resume)


def folder_bytes(folder: Path, pattern: str) -> int:
    total = 0
    for path in folder.glob(pattern):
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # renamed by its task in the meantime
            pass
    return total


def run_with_progress(executor, tokens_folder: Path, total_documents: int | None) -> float:
    """Run the executor in a thread while a progress bar follows the token files the tasks write."""
    failure: list[BaseException] = []

    def target():
        try:
            executor.run()
        except BaseException as e:  # re-raised in the main thread
            failure.append(e)

    start = time.time()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    with tqdm(total=total_documents, unit="doc", desc="tokenize", dynamic_ncols=True) as bar:
        while thread.is_alive():
            thread.join(0.5)
            documents = folder_bytes(tokens_folder, "*.doc_tokens*") // 8
            tokens = folder_bytes(tokens_folder, "*.tokens*") // 2
            bar.update(documents - bar.n)
            bar.set_postfix_str(f"{tokens / max(time.time() - start, 1e-9):,.0f} tok/s", refresh=False)
    if failure:
        error = failure[0]
        if isinstance(error, GPTStackError):
            raise error
        raise GPTStackError(f"tokenization failed ({type(error).__name__}: {error}); logs in "
                            f"{executor.logging_dir.path}/logs; the same command resumes") from error
    return time.time() - start


def count_skipped(rejected_folder: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in sorted(rejected_folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                reason = json.loads(line)["reason"]
                counts[reason] = counts.get(reason, 0) + 1
    return counts


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": sys.version.split()[0]}
    for package in ("gptstack", "datatrove", "tiktoken", "numpy", "pyarrow"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def commit(output: Path, work: Path, manifest: dict) -> None:
    """Move the finished shards into `output` and write the manifest last.

    The old manifest goes first, so a crash in this (short, rename-only) window leaves a folder that every reader
    refuses, never one whose manifest lists files of two different runs.
    """
    (output / MANIFEST_NAME).unlink(missing_ok=True)
    new_files = {entry["file"] for entry in manifest["shards"]}
    for name in sorted(new_files):
        os.replace(work / "staged" / name, output / name)
    for stale in output.glob(SHARD_GLOB):  # shards of an earlier, larger run
        if stale.name not in new_files:
            stale.unlink()
    for folder in ("rejected", "logs"):
        shutil.rmtree(output / folder, ignore_errors=True)
        if (work / folder).exists():
            os.replace(work / folder, output / folder)
    write_manifest(output, manifest)
    shutil.rmtree(work, ignore_errors=True)


def prepare(args: argparse.Namespace, argv: list[str]) -> dict:
    options = SourceOptions(input=args.input, subset=args.subset, hub_mirror=args.hub_mirror, text_key=args.text_key)
    output = Path(args.output or Path("data") / args.corpus)
    work = output / WORK_FOLDER
    check_existing_output(output, args.tokenizer)
    encoding = get_encoding(args.tokenizer)
    check_fits_uint16(encoding)
    readers = corpus_readers(args.corpus, options, str(work / "rejected"))  # checks the inputs
    make_output_folder(output)  # the first thing written

    # Reuse finished tasks only when they were produced by exactly this configuration.
    config = {"corpus": args.corpus, "source": vars(options), "tokenizer": args.tokenizer, "limit": args.limit,
              "tasks": args.tasks, "inputs": [getattr(reader, "files", None) for reader in readers]}
    config_path = work / "config.json"
    resume = config_path.exists() and json.loads(config_path.read_text()) == config
    if not resume:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        config_path.write_text(json.dumps(config))
    shutil.rmtree(work / "staged", ignore_errors=True)

    pipeline = build_pipeline(readers, args.limit, TokenizeToStream(str(work / "tokens"), args.tokenizer,
                                                                     threads=max(1, usable_cpus() // args.workers)))
    executor = make_executor(pipeline, args.tasks, args.workers, str(work / "logs"), resume)
    seconds = run_with_progress(executor, work / "tokens", args.limit)

    with tqdm(unit="tok", unit_scale=True, desc="write shards") as bar:
        shards = pack_shards(work / "tokens", args.tasks, work / "staged", args.val_tokens, args.shard_tokens,
                             progress=bar.update)
    splits = {split: [s for s in shards if s["split"] == split] for split in ("val", "train")}
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "tokenizer": args.tokenizer, "vocab_size": encoding.n_vocab, "eot_token": encoding.eot_token,
        "dtype": "uint16", "shards": shards,
        "totals": {"shards": len(shards), "documents": sum(s["documents"] for s in shards),
                   "tokens": sum(s["tokens"] for s in shards),
                   **{f"{split}_{key}": sum(s[key] for s in entries)
                      for split, entries in splits.items() for key in ("tokens", "documents")}},
        "skipped": count_skipped(work / "rejected"),
        "corpus": args.corpus, "source": {k: v for k, v in vars(options).items() if v is not None},
        "shard_tokens": args.shard_tokens, "val_tokens_requested": args.val_tokens,
        "command": shlex.join(["python", "-m", "pipeline.prepare", *argv]),
        "versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tokenize_seconds": round(seconds, 2), "resumed": resume,
    }
    if manifest["totals"]["tokens"] == 0:
        raise InputError(f"no document could be read from --corpus {args.corpus}"
                         f"{' --input ' + args.input if args.input else ''}; nothing written "
                         f"(skipped records are in {work / 'rejected'})")
    commit(output, work, manifest)
    print_summary(output, manifest)
    return manifest


def print_summary(output: Path, manifest: dict) -> None:
    totals, skipped = manifest["totals"], manifest["skipped"]
    print(f"\nwrote {output}/ ({manifest['tokenizer']}, vocab {manifest['vocab_size']:,}, "
          f"end-of-text {manifest['eot_token']})")
    print(f"  {'split':6} {'shards':>6} {'documents':>11} {'tokens':>14}")
    for split in ("val", "train"):
        count = sum(1 for s in manifest["shards"] if s["split"] == split)
        print(f"  {split:6} {count:>6} {totals[split + '_documents']:>11,} {totals[split + '_tokens']:>14,}")
    print(f"  {'total':6} {totals['shards']:>6} {totals['documents']:>11,} {totals['tokens']:>14,}")
    seconds = max(manifest["tokenize_seconds"], 0.01)
    print(f"  read+tokenize: {seconds:.1f} s, {totals['documents'] / seconds:,.0f} docs/s, "
          f"{totals['tokens'] / seconds:,.0f} tokens/s"
          + (" (resumed: tasks an interrupted run had finished were reused)" if manifest["resumed"] else ""))
    if skipped:
        listed = ", ".join(f"{SKIP_REASONS.get(reason, reason)}: {count}" for reason, count in sorted(skipped.items()))
        print(f"  skipped {sum(skipped.values())} records ({listed}); kept in {output}/rejected/")
    else:
        print("  skipped records: none")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        prepare(parse_args(argv), argv)
    except GPTStackError as error:
        exit_with_error(error)


if __name__ == "__main__":
    main()
