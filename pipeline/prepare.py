"""Turn a corpus into verified uint16 token shards: `python -m pipeline.prepare --corpus sample`.

    read (datatrove reader, bad records skipped and kept; + cleaning recipe)  ->  dedup (exact, URL, MinHash)
        ->  shuffle (seeded, whole corpus)  ->  tokenize (tiktoken, one stream per task)
        ->  pack (val_000000.bin, train_000001.bin, ...)  ->  commit (shards renamed in, manifest.json last)

Each stage before pack is its own run of the executor writing its own folder (pipeline/stages.py). Everything is
first written inside OUTPUT/.prepare-work/; an earlier finished output in OUTPUT stays valid until the final commit,
which only renames files. Interrupted? Run the same command again: finished stages and finished datatrove tasks are
not redone. A different command or input refuses to mix with the unfinished work (`--restart` redoes what changed).
Where the stages run (this machine, a Ray cluster, Slurm jobs) is `--executor` (pipeline/executors.py).
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

from pipeline.clean import (add_cli_arguments, build_cleaning_steps, is_html_reader, parse_languages, recipe_for,
                            write_report)
from pipeline.corpora import CORPORA, SourceOptions, corpus_readers
from pipeline.dedup import DedupConfig, dedup_enabled, dedup_stages, parse_dedup_section, read_summary
from pipeline.errors import GPTStackError, InputError, exit_with_error
from pipeline.executors import (MAX_DEFAULT_TASKS, ExecutorFactory, add_executor_arguments, check_executor_arguments,
                                check_no_slurm_jobs_running, size_tasks, submit_finishing_job, tokenizer_threads)
from pipeline.executors import make_executor  # noqa: F401 (the one place an executor is chosen; bench/ uses it)
from pipeline.pack import VAL_MAX_FRACTION, pack_shards
from pipeline.readers import SKIP_REASONS, LimitDocuments
from pipeline.shards import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, read_manifest, write_manifest
from pipeline.shuffle import DEFAULT_SHUFFLE_BUCKETS, shuffle_stages
from pipeline.stages import Stage, StageReader, run_stages, stage_writer
from pipeline.tokenize_step import TokenizeToStream
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
               "  python -m pipeline.prepare --input 'my_data/*.jsonl.gz' --output data/mine\n"
               "  python -m pipeline.prepare --corpus fineweb --executor ray --ray-address auto   # on a Ray cluster\n"
               "  python -m pipeline.prepare --corpus fineweb --executor slurm --partition cpu --time 4:00:00\n"
               "  sbatch --nodes=8 slurm/prepare.sh --corpus fineweb --output data/fineweb   # Ray inside a Slurm job\n")
    parser.add_argument("--corpus", default=None,
                        help="corpus to prepare (default: sample, or local when --input is given)")
    parser.add_argument("--input", help="local files for --corpus local: a file, a folder (searched recursively) or "
                                        "a quoted glob; .jsonl, .jsonl.gz, .jsonl.zst, .parquet. For --corpus "
                                        "commoncrawl: WARC files, folders, globs or s3:// URLs (comma-separated)")
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
                             f"start of the shuffled corpus, but never more than {VAL_MAX_FRACTION * 100:.0f}%% of the "
                             "corpus so a small corpus still trains on most of its text; 0 = no validation shard "
                             "(default: 10,000,000)")
    parser.add_argument("--tokenizer", default="gpt2",
                        help="tiktoken encoding; gpt2 works offline, others download; ids must fit uint16 "
                             "(default: gpt2)")
    parser.add_argument("--workers", type=int, default=None,
                        help="tasks running at the same time (default: this machine's CPUs; with --executor ray the "
                             "cluster's CPUs / --cpus-per-task; with slurm no limit)")
    parser.add_argument("--tasks", type=int, default=None,
                        help="datatrove tasks the input is split into (default: one per input file, at most "
                             f"{MAX_DEFAULT_TASKS}; the sample corpus: --workers; 1 with --limit); the shards come "
                             "out the same for any number of tasks unless --limit is used")
    parser.add_argument("--limit", type=int, default=None,
                        help="read at most this many documents (split evenly between tasks), for quick runs")
    parser.add_argument("--restart", action="store_true",
                        help="an interrupted run of another command or input left unfinished work in "
                             f"OUTPUT/{WORK_FOLDER}: redo what changed instead of refusing (without it, rerunning the "
                             "same command resumes, skipping the finished tasks)")
    add_cli_arguments(parser)  # --recipe, --languages (pipeline/clean)
    add_executor_arguments(parser)  # --executor, --ray-address, --partition ... (pipeline/executors.py)
    group = parser.add_argument_group("dedup and shuffle (see README 'Deduplication and shuffling')")
    group.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=None,
                       help="remove exact duplicates (normalised text), documents of an already seen URL and near "
                            "duplicates (MinHash, FineWeb's settings; a recipe's `dedup:` section changes them); "
                            "every removed document is kept in OUTPUT/duplicates/ with the id of the one kept. "
                            "Default: on, except for fineweb and fineweb-edu, which were deduplicated on the Hub")
    group.add_argument("--seed", type=int, default=1337,
                       help="seed of the global shuffle of documents before tokenization: the same seed and input "
                            "give the same shards, another seed another order (default: 1337)")
    group.add_argument("--shuffle-buckets", type=int, default=DEFAULT_SHUFFLE_BUCKETS,
                       help="the shuffle sorts the corpus in this many pieces, one in memory at a time (about corpus "
                            f"size / N each); raise it for corpora beyond ~50 GB (default: {DEFAULT_SHUFFLE_BUCKETS})")
    args = parser.parse_args(argv)
    args.corpus = args.corpus or ("local" if args.input else "sample")
    for flag in ("shard_tokens", "workers", "tasks", "limit", "shuffle_buckets"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.val_tokens < 0:
        raise InputError(f"--val-tokens must be 0 or more, got {args.val_tokens}")
    if args.shard_tokens >= 2**31:
        raise InputError(f"--shard-tokens {args.shard_tokens} does not fit the shard header's int32 token count")
    check_executor_arguments(args)
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


def build_stages(readers: list, limit: int | None, cleaning: list, dedup: DedupConfig | None,
                 tokenize: TokenizeToStream, work: Path, args: argparse.Namespace, read_config: dict) -> list[Stage]:
    """The stages every document goes through, in order: read (+ clean) -> dedup -> shuffle -> tokenize.

    Each is one run of the executor over `args.tasks` tasks (dedup's buckets and clusters use their own counts);
    a stage's config (with the previous stage's) decides whether a rerun may reuse its output.
    """
    documents = work / "documents"
    read = [*readers, *([LimitDocuments(limit)] if limit else []), *cleaning, stage_writer(documents)]
    stages = [Stage("read", read, args.tasks, [documents, work / "rejected", work / "cleaning"], read_config)]
    if dedup:
        stages += dedup_stages(dedup, documents, work / "dedup", args.tasks)
        documents = work / "dedup" / "documents"
    stages += shuffle_stages(documents, work / "shuffle", args.tasks, args.seed, args.shuffle_buckets)
    stages.append(Stage("tokenize", [StageReader(work / "shuffle" / "documents"), tokenize], args.tasks,
                        [Path(tokenize.output_folder)], {"tokenizer": tokenize.tokenizer}))
    return stages


def input_signature(readers: list) -> list:
    """Each reader's files with their size and modification time (when local), so that a changed input file makes
    the read stage, and every stage after it, start afresh on a rerun."""
    signature = []
    for reader in readers:
        root = getattr(getattr(reader, "data_folder", None), "path", "")
        for name in getattr(reader, "files", None) or [getattr(reader, "path", None)]:
            try:
                info = os.stat(os.path.join(root, name) if root else name)
                signature.append([name, info.st_size, info.st_mtime_ns])
            except (OSError, TypeError):  # remote (hf://, s3://): its name is all we check
                signature.append([name])
    return signature


def folder_bytes(folder: Path, pattern: str) -> int:
    total = 0
    for path in folder.glob(pattern):
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # renamed by its task in the meantime
            pass
    return total


def run_with_progress(executor, stage: Stage, total_documents: int | None, run=None) -> tuple[object, float]:
    """Run the executor (`run()`, default `executor.run()`) in a thread while a progress bar follows it: documents
    and tokens per second for the tokenize stage (from the token files its tasks write), finished tasks for the
    others. Returns (stats, seconds)."""
    failure: list[BaseException] = []
    stats: list = []

    def target():
        try:
            stats.append((run or executor.run)())
        except BaseException as e:  # re-raised in the main thread
            failure.append(e)

    start = time.time()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    tokenizing = stage.name == "tokenize"
    tokens_folder, completions = Path(stage.outputs[0]), Path(executor.logging_dir.path) / "completions"
    with tqdm(total=total_documents if tokenizing else stage.tasks, unit="doc" if tokenizing else "task",
              desc=stage.name, dynamic_ncols=True) as bar:
        while thread.is_alive():
            thread.join(0.5)
            if tokenizing:
                documents = folder_bytes(tokens_folder, "*.doc_tokens*") // 8
                tokens = folder_bytes(tokens_folder, "*.tokens*") // 2
                bar.update(documents - bar.n)
                bar.set_postfix_str(f"{tokens / max(time.time() - start, 1e-9):,.0f} tok/s", refresh=False)
            else:
                bar.update(len(list(completions.glob("*"))) - bar.n if completions.is_dir() else 0)
        if not tokenizing and not failure:
            bar.update(stage.tasks - bar.n)
    if failure:
        error = failure[0]
        if isinstance(error, GPTStackError):
            raise error
        raise GPTStackError(f"stage {stage.name} failed ({type(error).__name__}: {error}); logs in "
                            f"{executor.logging_dir.path}/logs; the same command resumes") from error
    return (stats[0] if stats else None), time.time() - start


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
    for folder in ("rejected", "logs", "cleaning"):
        shutil.rmtree(output / folder, ignore_errors=True)
        if (work / folder).exists():
            os.replace(work / folder, output / folder)
    shutil.rmtree(output / "duplicates", ignore_errors=True)
    if any((work / "dedup" / "removed").glob("*")):  # documents dedup removed, each with the id of the one kept
        os.replace(work / "dedup" / "removed", output / "duplicates")
    write_manifest(output, manifest)
    shutil.rmtree(work, ignore_errors=True)


def prepare(args: argparse.Namespace, argv: list[str]) -> dict:
    options = SourceOptions(input=args.input, subset=args.subset, hub_mirror=args.hub_mirror, text_key=args.text_key)
    # absolute: Ray and Slurm tasks run in other working folders
    output = Path(args.output or Path("data") / args.corpus).absolute()
    work = output / WORK_FOLDER
    check_existing_output(output, args.tokenizer)
    encoding = get_encoding(args.tokenizer)
    check_fits_uint16(encoding)
    readers = corpus_readers(args.corpus, options, str(work / "rejected"))  # checks the inputs
    recipe, languages = recipe_for(args.recipe, args.corpus), parse_languages(args.languages)
    html_input = any(is_html_reader(reader) for reader in readers)
    for reader in readers:  # the recipe's `warc:` options (how WARC records become documents)
        for key, value in (recipe.warc.items() if is_html_reader(reader) else ()):
            setattr(reader, key, value)
    cleaning = build_cleaning_steps(recipe, str(work / "cleaning"), languages, html_input, args.tokenizer)
    dedup_config = parse_dedup_section(recipe.path, recipe.dedup)  # checked even when dedup is off
    dedup = dedup_config if dedup_enabled(args.dedup, args.corpus) and dedup_config.any else None
    size_tasks(args, readers)  # --tasks/--workers defaults (with --executor ray: connects to the cluster)
    check_no_slurm_jobs_running(work)
    make_output_folder(output)  # the first thing written

    # A stage is reused on a rerun only when it was produced by exactly this configuration (see pipeline/stages.py).
    read_config = {"corpus": args.corpus, "source": vars(options), "limit": args.limit,
                   "inputs": input_signature(readers),
                   "recipe": Path(recipe.path).read_text(encoding="utf-8"), "languages": languages}
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "staged", ignore_errors=True)

    tokenize = TokenizeToStream(str(work / "tokens"), args.tokenizer, threads=tokenizer_threads(args))
    stages = build_stages(readers, args.limit, cleaning, dedup, tokenize, work, args, read_config)
    executors = ExecutorFactory(args, work)

    def run_stage(stage: Stage, logging_dir: str, resume: bool):
        executor = executors.make(stage.name, stage.steps, stage.tasks, logging_dir, resume)
        if args.executor == "slurm":  # submits the stage's jobs and returns
            return executors.run(executor, stage.name, stage.tasks), 0.0
        total = args.limit if stage.name == "tokenize" and not dedup else None
        return run_with_progress(executor, stage, total, lambda: executors.run(executor, stage.name, stage.tasks))

    runs = run_stages(stages, work, run_stage, restart=args.restart)
    if any(run.status == "submitted" for run in runs.values()):  # Slurm: the last job writes the shards
        return report_submitted(args, argv, work, executors)
    resume = any(run.status != "ran" for run in runs.values())
    seconds = runs["tokenize"].seconds
    cleaned = None
    if cleaning:  # what the recipe kept and dropped, per step: cleaning/report.md (+ .png, .json)
        cleaned = write_report(str(work / "cleaning"), stages[0].steps, work / "logs" / "read" / "stats.json", recipe,
                               languages, args.input or args.corpus, recipe.report.get("examples", 3))

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
    if cleaned:
        manifest["cleaning"] = {"recipe": recipe.name, "languages": cleaned["languages"],
                                "documents": cleaned["documents"], "report": "cleaning/report.md"}
    manifest["dedup"] = {"enabled": False}
    if dedup:
        summary = read_summary(work / "dedup" / "clusters")
        manifest["dedup"] = {"enabled": True, "config": dedup.as_dict(), "removed": summary["removed"],
                             "clusters": summary["clusters"], "removed_documents": "duplicates/"}
    manifest["shuffle"] = {"seed": args.seed, "buckets": args.shuffle_buckets}
    manifest["stage_seconds"] = {name: round(run.seconds, 2) for name, run in runs.items()}
    manifest["executor"] = {"name": args.executor, "tasks": args.tasks,
                            "workers": None if args.workers == -1 else args.workers}  # None: as many as Slurm runs
    if manifest["totals"]["tokens"] == 0:
        kept_none = f" or the cleaning recipe kept none (see {work / 'cleaning' / 'report.md'})" if cleaned else ""
        raise InputError(f"no document could be read from --corpus {args.corpus}"
                         f"{' --input ' + args.input if args.input else ''}{kept_none}; nothing written "
                         f"(skipped records are in {work / 'rejected'})")
    commit(output, work, manifest)
    print_summary(output, manifest)
    return manifest


def report_submitted(args: argparse.Namespace, argv: list[str], work: Path, executors: ExecutorFactory) -> dict:
    """--executor slurm: submit the job that writes the shards once the last stage succeeded, and say what was
    submitted."""
    finish = submit_finishing_job(args, argv, work, executors.submitted[-1])
    jobs = {executor.job_name: executor.job_id for executor in executors.submitted}
    print("\nsubmitted to Slurm: " + ", ".join(f"{name} {job}" for name, job in jobs.items())
          + f", then prepare-finish {finish} (writes the shards to {work.parent}/)")
    print(f"  each stage's jobs start when the stage before succeeded; follow with `squeue --me`; logs in {work}/logs/"
          f"\n  interrupted or failed? run the same command again: finished tasks are skipped")
    return {"submitted": {**jobs, "prepare-finish": finish}}


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
        print("  dedup: off" + (" (--dedup turns it on)" if manifest["corpus"] in ("fineweb", "fineweb-edu") else ""))
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
    argv = sys.argv[1:] if argv is None else argv
    try:
        prepare(parse_args(argv), argv)
    except GPTStackError as error:
        exit_with_error(error)


if __name__ == "__main__":
    main()
