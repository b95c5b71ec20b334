"""Cleaning recipes: YAML files that list the cleaning steps, in order, with their parameters.

    name: fineweb
    warc: {trust_http_content_type: true}      # how WARC records become documents (see pipeline/read/warc.py)
    steps:
      - step: url_filter                       # a name from pipeline.clean.steps.STEP_CLASSES
      - step: gopher_quality
        applies_to: [en]                        # judge only documents detected as these languages
        enabled: true                           # false switches a step off without deleting it
        per_language: fineweb2                  # documents of a configs/fineweb2/ language: FineWeb-2's values
        params: {min_doc_words: 50}             # datatrove's keyword arguments for the step
    report: {count_tokens: true, examples: 3}
    dedup: {minhash: true}                      # checked and used by pipeline/dedup, kept here as given

`--recipe NAME` reads configs/recipes/NAME.yaml (fineweb, none); `--recipe PATH` reads your own file.
"""
from dataclasses import dataclass, field
from pathlib import Path

import configs
from gptstack.errors import GPTStackError
from pipeline.clean.multilingual import PER_LANGUAGE_STEPS, PER_LANGUAGE_VALUES
from pipeline.clean.steps import STEP_CLASSES, step_parameters

RECIPES_DIR = configs.path("recipes")  # packaged with the code (configs/__init__.py), so a wheel finds them too


class RecipeError(GPTStackError):
    """A cleaning recipe that is missing or malformed."""


@dataclass
class RecipeStep:
    step: str
    params: dict = field(default_factory=dict)
    applies_to: tuple[str, ...] = ()
    enabled: bool = True
    per_language: str | None = None  # "fineweb2": judge each language with its configs/fineweb2/ values


@dataclass
class Recipe:
    name: str
    path: str
    steps: list[RecipeStep]
    warc: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    dedup: dict | None = None  # the raw `dedup:` section; pipeline.dedup.parse_dedup_section checks it

    def enabled_steps(self) -> list[RecipeStep]:
        return [s for s in self.steps if s.enabled]


WARC_OPTIONS = {"trust_http_content_type": bool, "cjk_charsets": bool}
REPORT_OPTIONS = {"count_tokens": bool, "examples": int}


def builtin_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise RecipeError(f"--recipe {name_or_path}: no such file")
        return path
    builtin = RECIPES_DIR / f"{name_or_path}.yaml"
    if not builtin.is_file():
        raise RecipeError(f"--recipe {name_or_path}: not a file, and not a built-in recipe "
                          f"(built in: {', '.join(builtin_recipes())})")
    return builtin


def load_recipe(name_or_path: str) -> Recipe:
    """Read and check a recipe; every problem is a one-line RecipeError naming the file and the step."""
    path = recipe_path(name_or_path)
    data = configs.read_mapping(path, RecipeError, "a mapping with `steps:`")
    unknown = set(data) - {"name", "description", "steps", "warc", "report", "dedup"}
    if unknown:
        raise RecipeError(f"{path}: unknown top-level key(s) {sorted(unknown)}")
    steps_data = data.get("steps") or []
    if not isinstance(steps_data, list):
        raise RecipeError(f"{path}: `steps` must be a list")
    steps = [_parse_step(path, i, item) for i, item in enumerate(steps_data, start=1)]
    seen = [s.step for s in steps]
    for name in set(seen):
        if seen.count(name) > 1:
            raise RecipeError(f"{path}: step {name!r} appears {seen.count(name)} times; each step may appear once")
    return Recipe(name=str(data.get("name") or path.stem), path=str(path), steps=steps,
                  warc=_parse_options(path, "warc", data.get("warc"), WARC_OPTIONS),
                  report=_parse_options(path, "report", data.get("report"), REPORT_OPTIONS),
                  dedup=data.get("dedup"))


def _parse_options(path: Path, section: str, data, allowed: dict) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: `{section}` must be a mapping")
    for key, value in data.items():
        if key not in allowed:
            raise RecipeError(f"{path}: {section}.{key} is not an option (options: {', '.join(allowed)})")
        if not isinstance(value, allowed[key]):
            raise RecipeError(f"{path}: {section}.{key} must be {allowed[key].__name__}, got {value!r}")
    return dict(data)


def _parse_step(path: Path, index: int, item) -> RecipeStep:
    where = f"{path}: step {index}"
    if isinstance(item, str):
        item = {"step": item}
    if not isinstance(item, dict) or "step" not in item:
        raise RecipeError(f"{where}: expected a mapping with a `step:` name")
    name = item["step"]
    where = f"{path}: step {index} ({name})"
    if name not in STEP_CLASSES:
        raise RecipeError(f"{where}: unknown step; known steps: {', '.join(STEP_CLASSES)}")
    unknown = set(item) - {"step", "params", "applies_to", "enabled", "per_language"}
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: params, applies_to, enabled, "
                          "per_language)")
    per_language = item.get("per_language")
    if per_language is not None and (per_language != PER_LANGUAGE_VALUES or name not in PER_LANGUAGE_STEPS):
        raise RecipeError(f"{where}: `per_language` must be {PER_LANGUAGE_VALUES!r}, on one of the steps "
                          f"{', '.join(PER_LANGUAGE_STEPS)}")
    params = item.get("params") or {}
    if not isinstance(params, dict):
        raise RecipeError(f"{where}: `params` must be a mapping")
    allowed = step_parameters(name)
    for key in params:
        if key not in allowed:
            raise RecipeError(f"{where}: unknown parameter {key!r}; parameters: {', '.join(sorted(allowed))}")
    applies_to = item.get("applies_to") or []
    if isinstance(applies_to, str):
        applies_to = [applies_to]
    if not isinstance(applies_to, list) or not all(isinstance(x, str) for x in applies_to):
        raise RecipeError(f"{where}: `applies_to` must be a list of language codes such as [en]")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RecipeError(f"{where}: `enabled` must be true or false")
    return RecipeStep(step=name, params=params, applies_to=tuple(applies_to), enabled=enabled,
                      per_language=per_language)
