"""From a recipe to the list of datatrove steps that `pipeline.prepare` (or `python -m pipeline.clean`) runs.

    recipe = load_recipe("fineweb")
    steps = build_cleaning_steps(recipe, work_dir, languages=["en"], html_input=True)

Every step that drops documents writes them, with the reason in `metadata.filter_reason`, to
`work_dir/excluded/NN_<step>/<rank>.jsonl.gz` (NN = position in the chain; 00 is the WARC reader). The last
step keeps a few kept documents per task in `work_dir/kept_examples/` for the report.
"""
import argparse

from datatrove.pipeline.base import PipelineStep

from pipeline.clean.recipe import Recipe, RecipeError, RecipeStep, load_recipe
from pipeline.clean.steps import STEP_CLASSES, CountTokens, KeptExamples, TokenCounter, exclusion_writer
from pipeline.clean.words import SharedWordTokenizer

# Corpora that arrive already cleaned and filtered: no recipe unless asked for. Raw web input gets FineWeb's.
RECIPE_BY_CORPUS = {"commoncrawl": "fineweb"}
DEFAULT_RECIPE = "none"
WORD_SPLITTING_STEPS = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """--recipe and --languages, for `pipeline.prepare` and `pipeline.clean`."""
    group = parser.add_argument_group("cleaning (FineWeb's recipe; see README 'Cleaning web text')")
    group.add_argument("--recipe", default=None, metavar="fineweb|none|PATH",
                       help="cleaning recipe: a built-in name (configs/recipes/NAME.yaml) or a YAML file of your "
                            "own. Default: fineweb for --corpus commoncrawl (raw web pages), none for corpora that "
                            "are already clean (sample, fineweb, fineweb-edu) and for local files")
    group.add_argument("--languages", default="en", metavar="CODES",
                       help="comma-separated ISO 639-1 codes the language filter keeps, e.g. en or en,es,fr "
                            "(fastText lid.176 codes); 'all' keeps any language identified with enough "
                            "confidence (default: en)")


def parse_languages(value: str | None) -> list[str] | None:
    """'en,es' -> ['en', 'es']; 'all' -> None (every language)."""
    if value is None or value.strip().lower() == "all":
        return None
    languages = [code.strip() for code in value.split(",") if code.strip()]
    for code in languages:
        if not code.replace("_", "").isalpha():
            raise RecipeError(f"--languages {value}: {code!r} is not a language code such as en or es")
    if not languages:
        raise RecipeError(f"--languages {value!r}: give at least one language code, or 'all'")
    return languages


def recipe_for(args_recipe: str | None, corpus: str) -> Recipe:
    return load_recipe(args_recipe or RECIPE_BY_CORPUS.get(corpus, DEFAULT_RECIPE))


def _tuples(value):
    """YAML has no tuples; datatrove wants some (FineWeb's stop_chars for str.endswith, n-gram pairs)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def build_cleaning_steps(recipe: Recipe, work_dir: str, languages: list[str] | None = ("en",),
                         html_input: bool = False, tokenizer: str = "gpt2",
                         shared_word_split: bool = True) -> list[PipelineStep]:
    """The recipe's steps, ready to follow the reader(s) in a datatrove pipeline.

    html_input: the reader yields raw HTML (WARC): the extraction step runs (added with FineWeb's settings if the
        recipe has none). Otherwise the documents are text already and the recipe's pre-extraction steps that need
        HTML are left out (the URL filter still runs; documents without a URL pass it).
    shared_word_split: give the word-splitting filters one SharedWordTokenizer per language (the faster, identical
        path); False uses datatrove's own tokenizer (the reference the benchmark compares against).
    """
    languages = list(languages) if languages else None
    if not html_input and not recipe.enabled_steps():
        return []  # nothing to do: text in, text out, no report
    count_tokens = TokenCounter(tokenizer) if recipe.report.get("count_tokens", True) else None
    recipe_steps = [s for s in recipe.enabled_steps() if html_input or s.step != "trafilatura"]
    names = [s.step for s in recipe_steps]
    for position, step in enumerate(recipe_steps):
        if step.applies_to and "language_filter" not in names[:position]:
            raise RecipeError(f"{recipe.path}: step {step.step} has applies_to {list(step.applies_to)} but no "
                              f"language_filter runs before it to detect the language")
    word_tokenizers: dict[str, SharedWordTokenizer] = {}
    steps: list[PipelineStep] = []
    if not html_input and count_tokens:
        steps.append(CountTokens(count_tokens))
    if html_input and "trafilatura" not in names:
        insert_at = names.index("url_filter") + 1 if "url_filter" in names else 0
        recipe_steps = list(recipe_steps)
        recipe_steps.insert(insert_at, RecipeStep("trafilatura", {"favour_precision": True}))
    for number, step in enumerate(recipe_steps, start=1):
        folder = f"{work_dir}/excluded/{number:02d}_{step.step}"
        kwargs = {key: _tuples(value) for key, value in step.params.items()}
        kwargs["exclusion_writer"] = exclusion_writer(folder)
        if step.step in ("trafilatura", "pii"):
            kwargs["count_tokens"] = count_tokens
        if step.step == "language_filter":
            kwargs["languages"] = languages
        try:
            if step.step in WORD_SPLITTING_STEPS:
                language = step.applies_to[0] if step.applies_to else "en"
                if shared_word_split and language not in word_tokenizers:
                    word_tokenizers[language] = SharedWordTokenizer(language)
                kwargs["language"] = word_tokenizers[language] if shared_word_split else language
            instance = STEP_CLASSES[step.step](**kwargs)
        except (TypeError, ValueError) as e:
            raise RecipeError(f"{recipe.path}: step {step.step}: {' '.join(str(e).split())}") from None
        if step.step not in ("trafilatura", "pii"):
            instance.applies_to = step.applies_to
            instance.count_tokens = count_tokens
        instance.recipe_step = step.step
        instance.exclusion_folder = folder
        steps.append(instance)
    steps.append(KeptExamples(f"{work_dir}/kept_examples", per_task=recipe.report.get("examples", 3)))
    return steps


def is_html_reader(step: PipelineStep) -> bool:
    return bool(getattr(step, "produces_html", False))


__all__ = ["add_cli_arguments", "parse_languages", "recipe_for", "build_cleaning_steps", "is_html_reader",
           "RECIPE_BY_CORPUS"]
