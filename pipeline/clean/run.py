"""`python -m pipeline.clean`: clean WARC crawls (or jsonl/parquet text) into jsonl with a report, no tokenization.

    python -m pipeline.clean --input 'crawl/*.warc.gz' --output data/clean [--recipe fineweb] [--languages en,es]

This is the read stage of `pipeline.prepare` on its own, to look at the text itself: the same checked readers, the
same `--limit`, `--workers`, `--tasks` and `--recipe`, the same stage machinery; the documents the recipe keeps are
written as jsonl instead of going on to dedup and tokenization. It writes
  OUTPUT/kept/<task>.jsonl.gz      the cleaned documents
  OUTPUT/excluded/NN_<step>/       every document a step dropped or failed on, with metadata.filter_reason
  OUTPUT/rejected/                 every record the readers could not turn into a document, with its reason
                                   (malformed jsonl lines; skipped WARC records in rejected/warc/)
  OUTPUT/report.{md,png,json}      the cleaning report
  OUTPUT/logs/clean/, stages/      datatrove's logs and stats; what a rerun resumes from
Interrupted? Run the same command again: the tasks that finished are not redone. An unfinished output of another
command or input is refused (`--restart` starts it afresh); a finished one is replaced.
OUTPUT must be new, empty, or clean's own (its `.gptstack.json` marker, or an older version's stages/clean.json):
`--force` writes into another folder, replacing only the names above, and says which (gptstack/output_folder.py).
"""
import argparse
import sys
from pathlib import Path

from datatrove.pipeline.writers import JsonlWriter

from gptstack.cli_args import ArgumentParser, add_force_argument
from gptstack.errors import GPTStackError, InputError, exit_with_error
from gptstack.output_folder import claim_output_folder
from pipeline.clean.chain import (add_cli_arguments, build_cleaning_steps, cleaning_options, configure_html_readers,
                                  parse_languages, recipe_for)
from pipeline.clean.report import write_report
from pipeline.read.corpora import SourceOptions, corpus_of_files, corpus_readers
from pipeline.read.readers import SKIP_REASONS, LimitDocuments, count_skipped
from pipeline.runner.executors import ExecutorFactory, ExecutorSettings, size_tasks
from pipeline.runner.stages import Stage, input_signature, run_stages

STAGE = "clean"
REPORT_FILES = ("report.json", "report.md", "report.png")  # report.json last: its presence means "finished"
CLEAN_WRITES = ("kept", "excluded", "kept_examples", "rejected", "logs", "stages", "recipe.yaml", *REPORT_FILES)
DEFAULT_RECIPE_HELP = ("fineweb for WARC input (raw web pages), none for jsonl/parquet input (text already; add "
                       "--recipe fineweb to clean it)")


DEFAULT_OPTIONS = {"language_gate": None, "extractor": None}  # (a rerun with these resumes an older run's stage)


def clean(inputs: str, output: str, recipe: str | None = None, languages: list[str] | None = ("en",),
          workers: int | None = None, tasks: int | None = None, limit: int | None = None, restart: bool = False,
          shared_word_split: bool = True, force: bool = False, options: dict | None = None) -> dict:
    """Readers -> `limit` -> recipe -> kept/*.jsonl.gz, as one resumable stage; returns the report's summary.

    recipe: a name or a path; None: the default of the input's corpus (fineweb for WARC, none for text).
    workers, tasks, limit: as `pipeline.prepare`'s (None: its defaults; `limit` is a total over all tasks).
    force: write into an `output` that is not new, empty or clean's own (see the module docstring).
    options: build_cleaning_steps' language_gate and extractor (--language-gate, --extractor).
    """
    out = Path(output).absolute()
    corpus = corpus_of_files(inputs)
    readers = corpus_readers(corpus, SourceOptions(input=inputs), str(out / "rejected"))
    cleaning_recipe = recipe_for(recipe, corpus)
    html_input = configure_html_readers(readers, cleaning_recipe)
    plan = build_cleaning_steps(cleaning_recipe, str(out), languages, html_input,
                                shared_word_split=shared_word_split, **(options or {}))
    settings = ExecutorSettings()
    counts = size_tasks(settings, readers, tasks, workers, limit)
    # the first thing written: our marker, in a new or empty folder, our own, or with --force
    folder = claim_output_folder(out, "pipeline.clean", force, writes=CLEAN_WRITES,
                                 legacy=lambda path: (path / "stages" / f"{STAGE}.json").is_file())
    folder.record(CLEAN_WRITES)  # the stage writes them as it goes (no commit step to record them at)

    kept = JsonlWriter(str(out / "kept"), output_filename="${rank}.jsonl.gz")
    pipeline = [*readers, *([LimitDocuments(limit)] if limit else []), *plan.steps, kept]
    config = {"inputs": input_signature(readers), "limit": limit, "languages": plan.languages,
              "recipe": Path(cleaning_recipe.path).read_text(encoding="utf-8"),
              **({"pages": options} if options and options != DEFAULT_OPTIONS else {})}
    stage = Stage(STAGE, pipeline, counts.tasks,
                  [out / "kept", out / "excluded", out / "kept_examples", out / "rejected"], config)
    executors = ExecutorFactory(settings, counts.workers, out)

    def run_stage(stage: Stage, logging_dir: str, resume: bool):
        for name in REPORT_FILES:  # the report of an earlier run must not outlive the outputs it describes
            (out / name).unlink(missing_ok=True)
        return executors.run_stage(stage, logging_dir, resume)

    finished = (out / REPORT_FILES[0]).exists()
    run_stages([stage], out, run_stage, restart=restart or finished)
    return write_report(plan, pipeline, out / "logs" / STAGE, inputs)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m pipeline.clean", description=__doc__.split("\n\n")[0],
                            epilog="examples:\n  python -m pipeline.clean --input crawl/news.warc.gz --output data/clean --limit 100\n"
                                   "  python -m pipeline.clean --input 'crawl/*.warc.gz' --output data/clean-es --languages es\n"
                                   "  python -m pipeline.clean --input crawl/ --output data/clean-zh --recipe fineweb2 "
                                   "--languages zh --extractor resiliparse\n"
                                   "    (the language gate is on by default there; DCLM's extractor)\n\n"
                                   + "\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--input", required=True,
                        help="WARC files (.warc, .warc.gz, .warc.zst), or .jsonl(.gz/.zst)/.parquet files of "
                             "{'text': ...} records: files, folders, quoted globs or s3:// URLs, comma-separated")
    parser.add_argument("--output", required=True, help="folder for kept/, excluded/, rejected/, report.* and logs/")
    parser.add_argument("--workers", type=int, default=None,
                        help="tasks running at the same time (default: this machine's CPUs)")
    parser.add_argument("--tasks", type=int, default=None,
                        help="pieces the input is split into (default: one per input file; 1 with --limit)")
    parser.add_argument("--limit", type=int, default=None,
                        help="read at most this many documents in all (split evenly between tasks), for quick runs")
    add_force_argument(parser)
    parser.add_argument("--restart", action="store_true",
                        help="OUTPUT holds an unfinished run of another command or input: start afresh instead of "
                             "refusing (without it, rerunning the same command resumes)")
    add_cli_arguments(parser, DEFAULT_RECIPE_HELP)
    args = parser.parse_args(argv)
    try:
        for flag in ("workers", "tasks", "limit"):
            if getattr(args, flag) is not None and getattr(args, flag) < 1:
                raise InputError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
        summary = clean(args.input, args.output, args.recipe, parse_languages(args.languages), args.workers,
                        args.tasks, args.limit, args.restart, force=args.force, options=cleaning_options(args))
    except GPTStackError as error:
        exit_with_error(error)
    docs, output = summary["documents"], Path(args.output)
    print(f"cleaned: {docs['read']:,} documents read, {docs['kept']:,} kept, {docs['dropped']:,} dropped, "
          f"{docs['failed']:,} failed; report: {output / 'report.md'}")
    skipped = count_skipped(output / "rejected")
    if skipped:
        listed = ", ".join(f"{SKIP_REASONS.get(reason, reason)}: {n}" for reason, n in sorted(skipped.items()))
        print(f"skipped {sum(skipped.values())} records the readers could not read ({listed}); kept in "
              f"{output / 'rejected'}/")
    sys.exit(0 if summary["accounting_ok"] else 1)


if __name__ == "__main__":
    main()
