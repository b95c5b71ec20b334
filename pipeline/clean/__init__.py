"""Cleaning web text: FineWeb's recipe (datatrove examples/fineweb.py) from raw WARC, with a report and nothing lost.

  recipe.py   YAML recipes (configs/recipes/*.yaml): which steps, in which order, with which parameters
  steps.py    the steps: datatrove's classes, made to keep aside every drop and every crash
  langid.py   fastText lid.176 offline, inside datatrove's LanguageFilter
  words.py    the shared, faster word split the Gopher/C4/FineWeb filters use (identical words)
  chain.py    recipe -> CleaningPlan (the datatrove steps, and what the report needs); the --recipe/--languages options
  report.py   report.md / report.png / report.json of a run, read from its stats through the plan
  run.py      `python -m pipeline.clean`: prepare's read stage on its own, cleaning into jsonl without tokenizing
(The WARC reader that feeds it raw pages is pipeline/read/warc.py.)

Use from a pipeline (this is what `pipeline.prepare` does):

    from pipeline.clean import build_cleaning_steps, load_recipe, write_report
    plan = build_cleaning_steps(load_recipe("fineweb"), work_dir, languages=["en"], html_input=True)
    pipeline = [*readers, *plan.steps, writer]   # run it, then:
    write_report(plan, pipeline, logging_dir)
"""
from pipeline.clean.chain import (RECIPE_BY_CORPUS, CleaningPlan, add_cli_arguments, build_cleaning_steps,
                                  configure_html_readers, is_html_reader, parse_languages, recipe_for)
from pipeline.clean.recipe import Recipe, RecipeError, load_recipe
from pipeline.clean.report import write_report
from pipeline.read.warc import CheckedWarcReader

__all__ = ["add_cli_arguments", "build_cleaning_steps", "CleaningPlan", "configure_html_readers", "is_html_reader",
           "parse_languages", "recipe_for", "load_recipe", "Recipe", "RecipeError", "write_report",
           "CheckedWarcReader", "RECIPE_BY_CORPUS"]
