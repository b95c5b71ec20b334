"""From a recipe to the plan of datatrove steps that `pipeline.prepare` (or `python -m pipeline.clean`) runs.

    plan = build_cleaning_steps(load_recipe("fineweb"), work_dir, languages=["en"], html_input=True)
    pipeline = [reader, *plan.steps, writer]
    ...
    write_report(plan, pipeline, logging_dir)       # reads what each of the plan's steps did

Every step that drops documents writes them, with the reason in `metadata.filter_reason`, to
`work_dir/excluded/NN_<step>/<rank>.jsonl.gz` (NN = position in the chain). The last step keeps a few kept
documents per task in `work_dir/kept_examples/` for the report.
"""
import argparse
from dataclasses import dataclass, field

from datatrove.pipeline.base import PipelineStep

from pipeline.clean.languages import check_word_tokenizer, load_languages
from pipeline.clean.multilingual import FILTER_CLASSES, PER_LANGUAGE_CLASSES, judged_languages, per_language_judges
from pipeline.clean.recipe import Recipe, RecipeError, RecipeStep, load_recipe
from pipeline.clean.steps import STEP_CLASSES, CountTokens, GuardedFilter, GuardedTransform, KeptExamples, TokenCounter
from pipeline.clean.words import SharedWordTokenizer
from pipeline.read.readers import exclusion_writer
from pipeline.read.warc import CheckedWarcReader
from pipeline.tokenizer.tokenizer import Tokenizer

# Corpora that arrive already cleaned and filtered: no recipe unless asked for. Raw web input gets FineWeb's.
RECIPE_BY_CORPUS = {"commoncrawl": "fineweb"}
DEFAULT_RECIPE = "none"
WORD_SPLITTING_STEPS = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")
EXTRACTORS = ("trafilatura", "resiliparse")
AUTO_GATE_OFF = ["en"]  # --language-gate auto leaves FineWeb's English run (the default) as published  # steps that turn a page's HTML into its main text (HTML input only)


DEFAULT_RECIPE_HELP = ("fineweb for --corpus commoncrawl (raw web pages), none for corpora that are already clean "
                       "(sample, fineweb, fineweb-edu) and for local files")


def add_cli_arguments(parser: argparse.ArgumentParser, default_recipe_help: str = DEFAULT_RECIPE_HELP) -> None:
    """--recipe and --languages, for `pipeline.prepare` and `pipeline.clean` (which says its own default)."""
    group = parser.add_argument_group("cleaning (FineWeb's recipe; see docs/data.md)")
    group.add_argument("--recipe", default=None, metavar="fineweb|none|PATH",
                       help="cleaning recipe: a built-in name (configs/recipes/NAME.yaml) or a YAML file of your "
                            f"own. Default: {default_recipe_help}")
    group.add_argument("--languages", default="en", metavar="CODES",
                       help="comma-separated ISO 639-1 codes the language filter keeps, e.g. en or en,es,fr "
                            "(fastText lid.176 codes); 'all' keeps any language identified with enough "
                            "confidence (default: en)")
    group.add_argument("--language-gate", choices=("auto", "on", "off"), default="auto",
                       help="WARC input: skip, before extraction, pages that cannot be in a kept language (their "
                            "script, or fastText on a crude tag strip; pipeline/clean/gate.py). auto (default): on "
                            "when --languages is anything but en alone (FineWeb's English run stays as published)")
    group.add_argument("--extractor", choices=EXTRACTORS, default=None,
                       help="main-text extraction of WARC pages: trafilatura (FineWeb's, the default) or resiliparse "
                            "(DCLM's, several times faster, keeps more boilerplate; docs/data.md)")


def cleaning_options(args: argparse.Namespace) -> dict:
    """build_cleaning_steps' keyword arguments from --language-gate and --extractor."""
    gate = getattr(args, "language_gate", "auto")
    return {"language_gate": None if gate == "auto" else gate == "on", "extractor": getattr(args, "extractor", None)}


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
    from pipeline.clean.langcodes import unknown_language  # (reads the model's labels: only once codes are given)

    unknown = unknown_language(languages)
    if unknown:
        code, closest = unknown
        raise RecipeError(f"--languages {value}: {code!r} is not a code the language-ID model (fastText lid.176) "
                          f"outputs; closest valid: {', '.join(closest) or 'none'} (or 'all')")
    return languages


def recipe_for(args_recipe: str | None, corpus: str) -> Recipe:
    return load_recipe(args_recipe or RECIPE_BY_CORPUS.get(corpus, DEFAULT_RECIPE))


def _tuples(value):
    """YAML has no tuples; datatrove wants some (FineWeb's stop_chars for str.endswith, n-gram pairs)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


@dataclass(frozen=True)
class PlannedStep:
    """One of the recipe's steps in a plan: its name in the recipe, the datatrove step that runs it, and the folder
    where it keeps every document it drops or fails on."""

    name: str
    step: PipelineStep
    exclusion_folder: str
    shown_folder: str | None = None  # where the output folder holds them, when not at exclusion_folder's place


@dataclass
class CleaningPlan:
    """What `build_cleaning_steps` made of a recipe: the steps to run after the reader(s), and what the report
    needs to read their stats."""

    recipe: Recipe
    languages: list[str] | None  # None: every language
    work_dir: str  # excluded/, kept_examples/ and the report are here
    steps: list[PipelineStep] = field(default_factory=list)  # in order; empty when there is nothing to do
    recipe_steps: list[PlannedStep] = field(default_factory=list)  # the recipe's, among `steps`
    count_tokens: CountTokens | None = None  # counts the tokens of text input before the recipe's first step
    examples: int = 3  # kept and dropped documents per step shown in the report

    @property
    def examples_folder(self) -> str:
        return f"{self.work_dir}/kept_examples"

    def planned(self, step: PipelineStep) -> PlannedStep | None:
        return next((planned for planned in self.recipe_steps if planned.step is step), None)

    def split_after(self, name: str) -> tuple[list[PipelineStep], list[PipelineStep]]:
        """`steps` cut right after the recipe step `name` (where a recipe's `dedup.after` puts dedup): the steps
        up to it, and the rest, which run on the documents dedup keeps (empty when nothing of the recipe is left)."""
        position = next((i for i, step in enumerate(self.steps)
                         if (planned := self.planned(step)) and planned.name == name), None)
        if position is None:
            enabled = [planned.name for planned in self.recipe_steps]
            raise RecipeError(f"{self.recipe.path}: dedup.after names {name!r}, which is not an enabled step of this "
                              f"recipe for this input (steps: {', '.join(enabled) or 'none'})")
        head, tail = self.steps[:position + 1], self.steps[position + 1:]
        if not any(self.planned(step) for step in tail):
            return self.steps, []
        return head, tail

    def add_dedup(self, step: PipelineStep, removed_folder: str, shown_folder: str) -> None:
        """Count `step` (dedup's filter, run between the recipe's steps) as a step of the report."""
        self.recipe_steps.append(PlannedStep("dedup", step, removed_folder, shown_folder))


def build_cleaning_steps(recipe: Recipe, work_dir: str, languages: list[str] | None = ("en",),
                         html_input: bool = False, tokenizer: Tokenizer | None = None,
                         shared_word_split: bool = True, language_gate: bool | None = None,
                         extractor: str | None = None) -> CleaningPlan:
    """The recipe's steps, ready to follow the reader(s) in a datatrove pipeline (`plan.steps`).

    html_input: the reader yields raw HTML (WARC): the extraction step runs (added with FineWeb's settings if the
        recipe has none). Otherwise the documents are text already and the recipe's pre-extraction steps that need
        HTML are left out (the URL filter still runs; documents without a URL pass it).
    shared_word_split: give the word-splitting filters one SharedWordTokenizer per language (the faster, identical
        path); False uses datatrove's own tokenizer (the reference the benchmark compares against).
    language_gate: with html_input, the language gate runs right before extraction (pipeline/clean/gate.py);
        None: when `languages` is anything but ["en"] (AUTO_GATE_OFF). A recipe that names the step decides itself.
    extractor: replace the recipe's extraction step by this one (trafilatura, resiliparse); None: the recipe's.
    """
    languages = list(languages) if languages else None
    plan = CleaningPlan(recipe, languages, work_dir, examples=recipe.report.get("examples", 3))
    if not html_input and not recipe.enabled_steps():
        return plan  # nothing to do: text in, text out, no report
    counted = tokenizer or Tokenizer("gpt2")  # the report counts tokens of the run's tokenizer (GPT-2's by default)
    count_tokens = TokenCounter(counted) if recipe.report.get("count_tokens", True) else None
    recipe_steps = [s for s in recipe.enabled_steps() if html_input or s.step not in EXTRACTORS + ("language_gate",)]
    names = [s.step for s in recipe_steps]
    for position, step in enumerate(recipe_steps):
        if (step.applies_to or (step.per_language and step.step != "language_filter")) \
                and "language_filter" not in names[:position]:
            raise RecipeError(f"{recipe.path}: step {step.step} judges by language (applies_to/per_language) but "
                              f"no language_filter runs before it to detect the language")
    registry = load_languages() if any(s.per_language for s in recipe_steps) else {}
    if not html_input and count_tokens:
        plan.count_tokens = CountTokens(count_tokens)
        plan.steps.append(plan.count_tokens)
    if html_input and not set(EXTRACTORS) & set(names):
        insert_at = names.index("url_filter") + 1 if "url_filter" in names else 0
        recipe_steps.insert(insert_at, RecipeStep("trafilatura", {"favour_precision": True}))
    if html_input:
        recipe_steps = page_steps(recipe, recipe_steps, languages, language_gate, extractor)
    word_tokenizers: dict[str, SharedWordTokenizer] = {}

    def word_split(code: str):
        """The word tokenizer of a language(-script) code, one per code, shared by every step that splits words."""
        check_word_tokenizer(code)
        if not shared_word_split:
            return code
        if code not in word_tokenizers:
            word_tokenizers[code] = SharedWordTokenizer(code)
        return word_tokenizers[code]

    for number, step in enumerate(recipe_steps, start=1):
        folder = f"{work_dir}/excluded/{number:02d}_{step.step}"
        step_class = STEP_CLASSES[step.step]
        kwargs = {key: _tuples(value) for key, value in step.params.items()}
        kwargs.update(exclusion_writer=exclusion_writer(folder), count_tokens=count_tokens)
        if issubclass(step_class, (GuardedFilter, GuardedTransform)):
            kwargs["applies_to"] = step.applies_to
        if step.step in ("language_filter", "language_gate"):
            kwargs["languages"] = languages
        judged = judged_languages(registry, languages) if step.per_language else []
        try:
            if step.per_language and step.step in FILTER_CLASSES:  # one datatrove filter per language
                judges = per_language_judges(step.step, {k: _tuples(v) for k, v in step.params.items()},
                                             step.applies_to, registry, languages, word_split)
                instance = PER_LANGUAGE_CLASSES[step.step](judges=judges, exclusion_writer=kwargs["exclusion_writer"],
                                                           count_tokens=count_tokens)
            else:
                if step.per_language and step.step == "language_filter":
                    kwargs["language_thresholds"] = {label: registry[label].min_language_score for label in judged}
                elif step.per_language:  # a text step: FineWeb-2's languages (and its own applies_to) only
                    kwargs["applies_to"] = tuple(judged) + tuple(step.applies_to)
                if step.step in WORD_SPLITTING_STEPS:
                    kwargs["language"] = word_split(step.applies_to[0] if step.applies_to else "en")
                instance = step_class(**kwargs)
        except (TypeError, ValueError) as e:
            raise RecipeError(f"{recipe.path}: step {step.step}: {' '.join(str(e).split())}") from None
        plan.recipe_steps.append(PlannedStep(step.step, instance, folder))
        plan.steps.append(instance)
    plan.steps.append(KeptExamples(plan.examples_folder, per_task=plan.examples))
    return plan


def page_steps(recipe: Recipe, steps: list[RecipeStep], languages: list[str] | None, language_gate: bool | None,
               extractor: str | None) -> list[RecipeStep]:
    """The recipe's steps with the chosen extractor in place of its own, and the language gate right before it when
    it can rule pages out (some languages kept, each of a script or Latin language the gate knows)."""
    from pipeline.clean.gate import GateRule

    steps = list(steps)
    at = next(i for i, s in enumerate(steps) if s.step in EXTRACTORS)
    if extractor and steps[at].step != extractor:
        steps[at] = RecipeStep(extractor)
    named = any(s.step == "language_gate" for s in recipe.steps)  # the recipe's own choice, enabled or not
    if language_gate is False:
        return [s for s in steps if s.step != "language_gate"]
    if language_gate is None and languages == AUTO_GATE_OFF:
        return steps
    if not named and languages and not GateRule(languages).open:
        steps.insert(at, RecipeStep("language_gate"))
    return steps


def is_html_reader(step: PipelineStep) -> bool:
    """Whether `step` yields raw HTML, which the recipe's extraction step must turn into text."""
    return isinstance(step, CheckedWarcReader)


def configure_html_readers(readers: list[PipelineStep], recipe: Recipe) -> bool:
    """Give the HTML readers the recipe's `warc:` options (how WARC records become documents); whether any of
    `readers` yields HTML."""
    html_readers = [reader for reader in readers if is_html_reader(reader)]
    for reader in html_readers:
        for key, value in recipe.warc.items():
            setattr(reader, key, value)
    return bool(html_readers)


__all__ = ["add_cli_arguments", "cleaning_options", "EXTRACTORS", "parse_languages", "recipe_for",
           "build_cleaning_steps", "CleaningPlan", "PlannedStep", "page_steps", "is_html_reader",
           "configure_html_readers", "RECIPE_BY_CORPUS"]
