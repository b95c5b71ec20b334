"""`python -m pipeline.clean`: clean WARC crawls (or jsonl text) into jsonl with a report, no tokenization.

    python -m pipeline.clean --input 'crawl/*.warc.gz' --output data/clean [--recipe fineweb] [--languages en,es]

writes OUTPUT/kept/<rank>.jsonl.gz (the cleaned documents), OUTPUT/excluded/NN_step/ (everything dropped, with
its reason), OUTPUT/report.{md,png,json} and OUTPUT/logs/ (datatrove's logs and stats). `pipeline.prepare` runs
the same steps before tokenizing; this command is for looking at the text itself. Here --recipe defaults to
fineweb whatever the input.
"""
import argparse
import shutil
import sys
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from pipeline.clean.chain import add_cli_arguments, build_cleaning_steps, parse_languages
from pipeline.clean.recipe import load_recipe
from pipeline.clean.report import write_report
from pipeline.clean.warc import CheckedWarcReader, expand_warc_inputs
from pipeline.errors import GPTStackError, InputError, exit_with_error


JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst")


def reader_for(inputs: str, work_dir: str, recipe, limit: int = -1):
    """datatrove's JsonlReader for a .jsonl file (or a folder of them), else a checked WARC reader."""
    first = Path(inputs.split(",")[0])
    if first.name.endswith(JSONL_SUFFIXES) or (first.is_dir() and any(
            p.name.endswith(JSONL_SUFFIXES) for p in first.iterdir())):
        if not first.exists():
            raise InputError(f"--input {first}: no such file or folder")
        if first.is_file():
            return JsonlReader(str(first.parent), glob_pattern=first.name, limit=limit)
        return JsonlReader(str(first), glob_pattern="*.jsonl*", limit=limit)
    root, files = expand_warc_inputs(inputs)
    return CheckedWarcReader(root, files, f"{work_dir}/excluded/00_warc", limit=limit,
                             trust_http_content_type=recipe.warc.get("trust_http_content_type", True))


def clean(inputs: str, output: str, recipe_name: str = "fineweb", languages: list[str] | None = ("en",),
          workers: int = 1, tasks: int | None = None, limit: int = -1, shared_word_split: bool = True) -> dict:
    """Run reader -> recipe -> JsonlWriter(kept) with datatrove's LocalPipelineExecutor; returns the report."""
    recipe = load_recipe(recipe_name)
    reader = reader_for(inputs, output, recipe, limit)
    html = bool(getattr(reader, "produces_html", False))
    steps = build_cleaning_steps(recipe, output, languages, html_input=html, shared_word_split=shared_word_split)
    pipeline = [reader, *steps, JsonlWriter(f"{output}/kept", output_filename="${rank}.jsonl.gz")]
    n_tasks = tasks or max(1, min(workers, len(getattr(reader, "files", [None]))))
    logs = Path(output) / "logs"
    for folder in ("logs", "kept", "excluded", "kept_examples"):  # a rerun starts afresh (datatrove would
        shutil.rmtree(Path(output) / folder, ignore_errors=True)   # otherwise skip tasks its logs call complete)
    executor = LocalPipelineExecutor(pipeline=pipeline, tasks=n_tasks, workers=workers, logging_dir=str(logs))
    stats = executor.run()
    return write_report(output, pipeline, stats, recipe, languages, inputs, recipe.report.get("examples", 3))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.clean", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="WARC files/folders/globs/s3:// URLs (comma-separated), "
                                                       "or a jsonl file/folder of {'text': ...} records")
    parser.add_argument("--output", required=True, help="folder for kept/, excluded/, report.* and logs/")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--limit", type=int, default=-1, help="read at most this many documents per task")
    add_cli_arguments(parser)
    args = parser.parse_args(argv)
    try:
        summary = clean(args.input, args.output, args.recipe or "fineweb", parse_languages(args.languages),
                        workers=args.workers, limit=args.limit)
    except GPTStackError as error:
        exit_with_error(error)
    docs = summary["documents"]
    print(f"cleaned: {docs['read']:,} documents read, {docs['kept']:,} kept, {docs['dropped']:,} dropped, "
          f"{docs['failed']:,} failed; report: {Path(args.output) / 'report.md'}")
    sys.exit(0 if summary["accounting_ok"] else 1)


if __name__ == "__main__":
    main()
