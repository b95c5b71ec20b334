"""Cleaning web text: FineWeb's recipe (datatrove examples/fineweb.py) from raw WARC, with a report and nothing lost.

  recipe.py   YAML recipes (configs/recipes/*.yaml): which steps, in which order, with which parameters
  steps.py    the steps: datatrove's classes, made to keep aside every drop and every crash
  langid.py   fastText lid.176 offline, inside datatrove's LanguageFilter
  words.py    the shared, faster word split the Gopher/C4/FineWeb filters use (identical words)
  warc.py     WARC input (local, globs, s3://...), every skipped record counted and kept as a pointer
  chain.py    recipe -> list of datatrove steps; the --recipe/--languages command-line options
  report.py   report.md / report.png / report.json of a run
  run.py      `python -m pipeline.clean`: clean into jsonl without tokenizing

Use from a pipeline (this is what `pipeline.prepare` does):

    from pipeline.clean import add_cli_arguments, build_cleaning_steps, load_recipe, write_report
    steps = build_cleaning_steps(load_recipe("fineweb"), work_dir, languages=["en"], html_input=True)
"""
from pipeline.clean.chain import (RECIPE_BY_CORPUS, add_cli_arguments, build_cleaning_steps, is_html_reader,
                                  parse_languages, recipe_for)
from pipeline.clean.recipe import Recipe, RecipeError, load_recipe
from pipeline.clean.report import write_report
from pipeline.clean.warc import CheckedWarcReader, expand_warc_inputs

__all__ = ["add_cli_arguments", "build_cleaning_steps", "is_html_reader", "parse_languages", "recipe_for",
           "load_recipe", "Recipe", "RecipeError", "write_report", "CheckedWarcReader", "expand_warc_inputs",
           "RECIPE_BY_CORPUS"]
