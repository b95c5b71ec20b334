"""Turn a corpus into verified uint16 token shards: `python -m pipeline.prepare --corpus sample`.

    1. read      datatrove reader, bad records skipped and kept; + cleaning recipe    (pipeline/read/corpora.py, clean/)
    2. dedup     exact, URL, MinHash                                                   (pipeline/dedup/)
                 (a recipe with `dedup.after: STEP` runs dedup right after that step, then its later steps as
                 a `filter` stage: FineWeb-2's order, language ID -> dedup -> quality filters)
    3. shuffle   seeded, whole corpus                                                 (pipeline/tokens/shuffle.py)
    4. tokenize  tiktoken, one stream per task (--tokenizer train: BPE learnt first)
                                                          (pipeline/tokens/tokenize_step.py, pipeline/tokenizer/plan.py)
    5. pack      val_000000.bin, train_000001.bin, ...; then commit: shards renamed in,
                 manifest.json last                                          (pipeline/tokens/pack.py, pipeline/shards.py)

Steps 1-4 are each a run of the executor writing its own folder (pipeline/runner/stages.py). Everything is first written
inside OUTPUT/.prepare-work/; an earlier finished output in OUTPUT stays valid until the final commit, which only
renames files. OUTPUT must be new, empty, or prepare's own (its `.gptstack.json` marker, or an older version's
manifest.json); `--force` writes into another folder, replacing only the names prepare writes, and says which.
Interrupted? Run the same command again: finished stages and finished datatrove tasks are
not redone. A different command or input refuses to mix with the unfinished work (`--restart` redoes what changed).
Where the stages run (this machine, a Ray cluster, Slurm jobs) is `--executor` (pipeline/runner/executors.py).
"""
import argparse
import contextlib
import shlex
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from gptstack.errors import GPTStackError, InputError, ShardError, exit_with_error
from gptstack.output_folder import claim_output_folder
from gptstack.folder_lock import FolderLock, describe_takeover
from pipeline.clean import build_cleaning_steps, configure_html_readers, parse_languages, recipe_for, write_report
from pipeline.clean.chain import CleaningPlan, cleaning_options
from pipeline.dedup import (DEDUP_FILTER_STAGE, DUPLICATES_FOLDER, DedupConfig, dedup_enabled, dedup_report,
                            dedup_stages, parse_dedup_section)
from pipeline.dedup.rehydrate import Rehydrate, plan_rehydration, rehydrate_stage, rehydration_summary
from pipeline.dedup.rehydrate import describe as describe_rehydration
from pipeline.dedup.steps import DedupFilter
from pipeline.inspect import print_summary
from pipeline.prepare_args import WORK_FOLDER, parse_args
from pipeline.read.corpora import SourceOptions, corpus_readers
from pipeline.read.readers import SKIP_REASONS, LimitDocuments, count_skipped
from pipeline.runner.executors import (ExecutorFactory, ExecutorSettings, check_no_slurm_jobs_running, report_submitted,
                                       size_tasks, tokenizer_threads)
from pipeline.runner.progress import folder_bytes
from pipeline.runner.stages import Stage, StageReader, input_signature, run_stages, stage_writer
from pipeline.runner.tasklog import is_disk_full
from pipeline.shards import (MANIFEST_NAME, SHARD_GLOB, build_manifest, check_output_folder, commit_shard_folder,
                             provenance, read_manifest)
from pipeline.tokenizer import COPY_DIR, get_tokenizer
from pipeline.tokenizer.plan import (manifest_tokenizer, plan_tokenizer, tokenizer_companion, tokenizer_fingerprint,
                                     train_on_shuffled)
from pipeline.tokens.pack import pack_shards
from pipeline.tokens.shuffle import shuffle_stages
from pipeline.tokens.tokenize_step import TokenizeToStream
from pipeline.tokens.val_source import VAL_TOKENS_FOLDER, val_stage, val_subset_readers

FILTER_STAGE = "filter"  # the recipe's steps after dedup (a recipe whose `dedup.after` names a step)
COMPANIONS = ("rejected", "logs", "cleaning", DUPLICATES_FOLDER, COPY_DIR)  # committed beside the shards
PREPARE_WRITES = (WORK_FOLDER, MANIFEST_NAME, SHARD_GLOB, *COMPANIONS)  # every top-level name prepare writes

# A run killed with kill -9 leaves its forked workers holding the lock until they notice (pipeline/runner/lifeline.py,
# about a second; longer on a loaded machine): a run that finds the holder's main process dead waits this long.
ORPHAN_GRACE_SECONDS = 30

def build_stages(readers: list, limit: int | None, cleaning: CleaningPlan, dedup: DedupConfig | None,
                 tokenize: TokenizeToStream, tokenizer_spec: str, work: Path, tasks: int, seed: int,
                 shuffle_buckets: int, read_config: dict, rehydrate: Rehydrate | None = None) -> list[Stage]:
    """Steps 1-4, each one run of the executor over `tasks` tasks (dedup's buckets and clusters use their own
    counts); a stage's config (with the previous stage's) decides whether a rerun may reuse its output.

    A recipe whose `dedup.after` names one of its steps (fineweb2: language_filter, FineWeb-2's order) has its later
    steps run after dedup, as a stage of their own ("filter"), on the documents dedup kept."""
    cleaning_steps, after_dedup = (cleaning.split_after(dedup.after) if dedup and dedup.after
                                   else (cleaning.steps, []))
    documents = work / "documents"
    read = [*readers, *([LimitDocuments(limit)] if limit else []), *cleaning_steps, stage_writer(documents)]
    stages = [Stage("read", read, tasks, [documents, work / "rejected", work / "cleaning"], read_config)]
    if dedup:
        stages += dedup_stages(dedup, documents, work / "dedup", tasks)
        documents = work / "dedup" / "documents"
    if after_dedup:
        dedup_filter = next(step for step in stages[-1].steps if isinstance(step, DedupFilter))
        cleaning.add_dedup(dedup_filter, str(work / "dedup" / "removed"), DUPLICATES_FOLDER)
        filtered = work / "filtered"
        outputs = [filtered, Path(cleaning.examples_folder),
                   *(Path(p.exclusion_folder) for p in cleaning.recipe_steps if p.step in after_dedup)]
        steps = [StageReader(documents), *after_dedup, stage_writer(filtered)]
        stages.append(Stage(FILTER_STAGE, steps, tasks, outputs,
                            {"recipe": read_config["recipe"], "languages": read_config["languages"]}))
        documents = filtered
    if rehydrate:  # FineWeb-2's rehydration, on the final documents, before the shuffle spreads the copies
        stage, documents = rehydrate_stage(rehydrate, documents, work, tasks)
        stages.append(stage)
    stages += shuffle_stages(documents, work / "shuffle", tasks, seed, shuffle_buckets)
    stages.append(Stage("tokenize", [StageReader(work / "shuffle" / "documents"), tokenize], tasks,
                        [Path(tokenize.output_folder)], {"tokenizer": tokenizer_spec}))
    return stages


def prepare(args: argparse.Namespace, argv: list[str], held: contextlib.ExitStack) -> dict:
    """The whole run; `held` keeps the output folder's lock until the caller closes it (after the run)."""
    settings = ExecutorSettings(args.executor, args.ray_address, args.cpus_per_task, args.mem_per_cpu_gb,
                                args.partition, args.time, tuple(args.slurm_arg))
    options = SourceOptions(input=args.input, subset=args.subset, hub_mirror=args.hub_mirror, text_key=args.text_key)
    # absolute: Ray and Slurm tasks run in other working folders
    output = Path(args.output or Path("data") / args.corpus).absolute()
    work = output / WORK_FOLDER
    tokenizer = plan_tokenizer(args, output, work)  # a name, a verified folder, or one this run trains
    conflict = None  # shards of another tokenizer, or without a manifest: only --force replaces them (and says so)
    try:
        check_output_folder(output, tokenizer.label, unfinished_commit=work.is_dir())
    except (InputError, ShardError) as error:
        if not args.force:
            raise
        conflict = str(error)
    if not tokenizer.trains:
        tokenizer.tokenizer.check_fits_uint16()
    readers = corpus_readers(args.corpus, options, str(work / "rejected"))  # checks the inputs
    val_readers = val_subset_readers(args.corpus, args.val_subset, options, args.val_tokens,  # --val-subset
                                     str(work / "rejected" / "val-subset")) if args.val_subset else None
    recipe, languages = recipe_for(args.recipe, args.corpus), parse_languages(args.languages)
    html_input = configure_html_readers(readers, recipe)  # the recipe's `warc:` options
    cleaning_plan = build_cleaning_steps(recipe, str(work / "cleaning"), languages, html_input,
                                         get_tokenizer("gpt2") if tokenizer.trains else tokenizer.tokenizer,
                                         **cleaning_options(args))  # --language-gate, --extractor
    cleaning = cleaning_plan.steps  # (the plan's steps: empty when the recipe has nothing to do)
    dedup_config = parse_dedup_section(recipe.path, recipe.dedup,  # checked even when dedup is off
                                       [step.step for step in recipe.enabled_steps()])
    dedup = dedup_config if dedup_enabled(args.dedup, args.corpus) and dedup_config.any else None
    rehydrate = plan_rehydration(args.rehydrate, dedup_config.rehydrate, args.corpus, dedup is not None, work,
                                 *((get_tokenizer("gpt2"), "gpt2") if tokenizer.trains
                                   else (tokenizer.tokenizer, tokenizer.label)))
    counts = size_tasks(settings, readers, args.tasks, args.workers, args.limit)  # ray: connects to the cluster
    check_no_slurm_jobs_running(work)
    # The first thing written: our marker. Only a new or empty folder, our own, or --force (gptstack/output_folder.py).
    folder = claim_output_folder(output, "pipeline.prepare", args.force, writes=PREPARE_WRITES,
                                 legacy=written_by_older_prepare, conflict=conflict)
    folder.record([WORK_FOLDER])
    # One run per output folder, taken before anything in the work folder is read, reused or cleaned; a killed run's
    # lock is free again (gptstack/folder_lock.py).
    lock = held.enter_context(FolderLock(work / "lock", output, "prepare", orphan_grace=ORPHAN_GRACE_SECONDS))
    if lock.took_over:
        print(describe_takeover(lock.took_over))

    # Steps 1-4. A stage is reused on a rerun only when it was made by exactly this configuration (stages.py).
    read_config = {"corpus": args.corpus, "source": vars(options), "limit": args.limit,
                   "inputs": input_signature(readers),
                   "recipe": Path(recipe.path).read_text(encoding="utf-8"), "languages": languages,
                   **({"pages": cleaning_options(args)} if args.language_gate != "auto" or args.extractor else {})}
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "staged", ignore_errors=True)
    # a trained tokenizer joins the step once it exists (train_on_shuffled, below)
    tokenize = TokenizeToStream(str(work / "tokens"), tokenizer.tokenizer, tokenizer_threads(settings, counts.workers))
    stages = build_stages(readers, args.limit, cleaning_plan, dedup, tokenize, tokenizer.spec, work, counts.tasks,
                          args.seed, args.shuffle_buckets, read_config, rehydrate)
    executors = ExecutorFactory(settings, counts.workers, work, {"tokenize": None if dedup else args.limit})
    before_tokenize = {}
    if tokenizer.trains:  # stages 1-3, then the tokenizer learns from their output, then stage 4
        before_tokenize = run_stages(stages[:-1], work, executors.run_stage, restart=args.restart)
        tokenize.tokenizer = train_on_shuffled(tokenizer, work, counts.tasks)
    stages[-1].config.update(tokenizer_fingerprint(tokenizer))  # a changed folder is tokenized again
    if val_readers:  # the held-out split, tokenized by a stage of its own (pipeline/tokens/val_source.py)
        stages.append(val_stage(val_readers, tokenize.tokenizer, work, tokenize.threads, args.val_subset,
                                {"tokenizer": tokenizer.spec, **tokenizer_fingerprint(tokenizer)}))
    runs = {**run_stages(stages, work, executors.run_stage, restart=args.restart), **before_tokenize}
    if any(run.status == "submitted" for run in runs.values()):  # Slurm: the last job writes the shards
        return report_submitted(executors, argv)
    rehydrated = rehydration_summary(Path(rehydrate.summary_folder)) if rehydrate else None
    if rehydrated:
        print(describe_rehydration(rehydrated), flush=True)
    cleaned = None
    if cleaning:  # what the recipe kept and dropped, per step: cleaning/report.md (+ .png, .json)
        # the stages that ran the recipe's steps: read, and with dedup between them, dedup's filter and the rest
        split = any(stage.name == FILTER_STAGE for stage in stages)
        ran_recipe = [stage for stage in stages
                      if stage.name in (("read", DEDUP_FILTER_STAGE, FILTER_STAGE) if split else ("read",))]
        cleaned = write_report(cleaning_plan, [step for stage in ran_recipe for step in stage.steps],
                               [work / "logs" / stage.name for stage in ran_recipe], args.input or args.corpus,
                               root=work)  # (its paths relative to the output folder, which work becomes)

    # Step 5: pack the token streams into shards, then commit them with the manifest.
    # Every token of the streams goes into a shard (2 bytes each), so the bar has a total and an ETA.
    with tqdm(total=folder_bytes(work / "tokens", "*.tokens*") // 2 or None, unit="tok", unit_scale=True,
              desc="write shards") as bar:
        shards = pack_shards(work / "tokens", counts.tasks, work / "staged", args.val_tokens, args.shard_tokens,
                             progress=bar.update, val_stream_folder=work / VAL_TOKENS_FOLDER if val_readers else None)
    if not shards:
        kept_none = f" or the cleaning recipe kept none (see {work / 'cleaning' / 'report.md'})" if cleaned else ""
        raise InputError(f"no document could be read from --corpus {args.corpus}"
                         f"{' --input ' + args.input if args.input else ''}{kept_none}; nothing written "
                         f"({skipped_summary(work / 'rejected')})")
    tokenizer_sizes, tokenizer_fields = manifest_tokenizer(tokenizer, args.tokenizer)
    cleaning_summary = {"recipe": recipe.name, "languages": cleaned["languages"], "documents": cleaned["documents"],
                        "report": "cleaning/report.md"} if cleaned else None
    manifest = build_manifest(
        shards, tokenizer.label, **tokenizer_sizes, skipped=count_skipped(work / "rejected"),
        corpus=args.corpus, source={k: v for k, v in vars(options).items() if v is not None},
        shard_tokens=args.shard_tokens, val_tokens_requested=args.val_tokens,
        **({"validation": {"subset": args.val_subset, "read": "whole documents in order, up to --val-tokens"}}
           if val_readers else {}),
        **provenance(shlex.join(["python", "-m", "pipeline.prepare", *argv])),
        tokenize_seconds=round(runs["tokenize"].seconds, 2), resumed=any(run.status != "ran" for run in runs.values()),
        **({"cleaning": cleaning_summary} if cleaned else {}), dedup=dedup_report(dedup, work / "dedup"),
        **({"rehydration": rehydrated} if rehydrate else {}),
        shuffle={"seed": args.seed, "buckets": args.shuffle_buckets},
        stage_seconds={name: round(run.seconds, 2) for name, run in runs.items()},
        executor={"name": settings.executor, "tasks": counts.tasks,  # workers None: as many as Slurm runs
                  "workers": None if counts.workers == -1 else counts.workers}, **tokenizer_fields)
    removed = work / "dedup" / "removed"  # documents dedup removed, each with the id of the one kept
    commit_shard_folder(folder, work / "staged", manifest, {
        "rejected": work / "rejected", "logs": work / "logs", "cleaning": work / "cleaning",
        DUPLICATES_FOLDER: removed if any(removed.glob("*")) else None,
        COPY_DIR: tokenizer_companion(tokenizer, work)})
    shutil.rmtree(work, ignore_errors=True)
    print_summary(output, manifest)
    return manifest


def written_by_older_prepare(output: Path) -> bool:
    """A folder prepare wrote before output markers existed: a valid manifest.json of ours, or its unfinished work
    folder. Such a folder is accepted as prepare's own, so existing users' shard folders keep working."""
    if (output / WORK_FOLDER).is_dir():
        return True
    try:
        read_manifest(output)
    except ShardError:
        return False
    return True


def skipped_summary(rejected: Path) -> str:
    """What the readers skipped, for the error of a run that read nothing; names `rejected` only when it exists."""
    skipped = count_skipped(rejected)
    if not skipped:
        return "the input holds no record"
    listed = ", ".join(f"{SKIP_REASONS.get(reason, reason)}: {count}" for reason, count in sorted(skipped.items()))
    return f"skipped {sum(skipped.values())} records ({listed}); they are in {rejected}"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        with contextlib.ExitStack() as held:
            prepare(args, argv, held)
    except GPTStackError as error:
        exit_with_error(error)
    except OSError as error:  # a full disk while this process writes (stage records, shards, the report)
        if not is_disk_full(error):
            raise
        exit_with_error(GPTStackError(disk_full_message(Path(args.output or Path("data") / args.corpus), error)))


def disk_full_message(output: Path, error: OSError) -> str:
    return (f"{output.absolute()}: no space left on its disk ({error.filename or error.strerror}); the earlier "
            "output there is untouched; free some space and run the same command again (finished work is reused)")


if __name__ == "__main__":
    main()
