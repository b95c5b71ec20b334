"""Cleaning recipes: the FineWeb recipe is datatrove's examples/fineweb.py, recipes are checked, steps are built."""
import inspect
import json

import pytest
import yaml
from datatrove.data import Document
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter, LanguageFilter)
from datatrove.pipeline.formatters import PIIFormatter

from pipeline.clean import RecipeError, build_cleaning_steps, load_recipe, parse_languages
from pipeline.clean.langid import OfflineFT176LID
from pipeline.clean.steps import CleanTrafilatura, CountTokens, KeptExamples

FINEWEB_ORDER = ["url_filter", "trafilatura", "language_filter", "gopher_repetition", "gopher_quality",
                 "c4_quality", "fineweb_quality", "pii", "decontaminate"]
# examples/fineweb.py changes only these from datatrove's defaults
EXAMPLE_OVERRIDES = {("trafilatura", "favour_precision"): True, ("c4_quality", "filter_no_terminal_punct"): False}
DATATROVE_CLASS = {"gopher_repetition": GopherRepetitionFilter, "gopher_quality": GopherQualityFilter,
                   "c4_quality": C4QualityFilter, "fineweb_quality": FineWebQualityFilter, "pii": PIIFormatter,
                   "language_filter": LanguageFilter}


def as_lists(value):
    return [as_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


def test_fineweb_recipe_is_datatrove_example():
    recipe = load_recipe("fineweb")
    assert [s.step for s in recipe.enabled_steps()] == FINEWEB_ORDER
    for step in recipe.steps:
        for key, value in step.params.items():
            if (step.step, key) in EXAMPLE_OVERRIDES:
                assert value == EXAMPLE_OVERRIDES[(step.step, key)]
            elif step.step in DATATROVE_CLASS:
                default = inspect.signature(DATATROVE_CLASS[step.step].__init__).parameters[key].default
                assert as_lists(value) == as_lists(default), (step.step, key)
    assert {s.step: s.applies_to for s in recipe.steps}["gopher_quality"] == ("en",)


def test_steps_built_from_recipe(tmp_path):
    recipe = load_recipe("fineweb")
    html = build_cleaning_steps(recipe, str(tmp_path), ["en"], html_input=True)
    assert [planned.name for planned in html.recipe_steps] == FINEWEB_ORDER
    assert html.steps[:-1] == [planned.step for planned in html.recipe_steps]
    assert isinstance(html.steps[-1], KeptExamples) and html.count_tokens is None
    c4 = next(planned for planned in html.recipe_steps if planned.name == "c4_quality")
    assert c4.step.filter_no_terminal_punct is False and c4.exclusion_folder.endswith("06_c4_quality")
    assert html.planned(c4.step) is c4 and html.planned(html.steps[-1]) is None
    # the recipe's applies_to reaches the filters through their constructor
    assert {p.name: p.step.applies_to for p in html.recipe_steps if hasattr(p.step, "applies_to")} == {
        "url_filter": (), "trafilatura": (), "language_filter": (), "gopher_repetition": ("en",),
        "gopher_quality": ("en",), "c4_quality": ("en",), "fineweb_quality": ("en",), "pii": (),
        "decontaminate": ()}
    # two filters share one word splitter: the split of a text is made once
    gopher = [p.step for p in html.recipe_steps if p.name in ("gopher_repetition", "gopher_quality")]
    assert gopher[0].language is gopher[1].language
    text = build_cleaning_steps(recipe, str(tmp_path), ["en"], html_input=False)
    assert isinstance(text.steps[0], CountTokens) and text.steps[0] is text.count_tokens
    assert "trafilatura" not in [planned.name for planned in text.recipe_steps]
    none = load_recipe("none")
    assert build_cleaning_steps(none, str(tmp_path), ["en"], html_input=False).steps == []
    assert isinstance(build_cleaning_steps(none, str(tmp_path), ["en"], html_input=True).steps[0], CleanTrafilatura)


def test_disabled_step_and_parameters_reach_datatrove(tmp_path):
    data = yaml.safe_load(open(load_recipe("fineweb").path))
    data["steps"][4]["params"]["min_doc_words"] = 7
    data["steps"][7]["enabled"] = False
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    plan = build_cleaning_steps(load_recipe(str(path)), str(tmp_path), ["en"], html_input=True)
    assert [planned.name for planned in plan.recipe_steps] == [s for s in FINEWEB_ORDER if s != "pii"]
    assert next(p.step for p in plan.recipe_steps if p.name == "gopher_quality").min_doc_words == 7


@pytest.mark.parametrize("text, message", [
    ("steps: [{step: gopher_qualty}]", "unknown step"),
    ("steps: [{step: gopher_quality, params: {min_words: 3}}]", "unknown parameter 'min_words'"),
    ("steps: [{step: language_filter}, {step: gopher_quality, applies_to: en, colour: red}]", "unknown key"),
    ("steps: [{step: gopher_quality, applies_to: [en]}]", "no language_filter runs before it"),
    ("steps: [{step: pii}, {step: pii}]", "appears 2 times"),
    ("steps: [{step: pii, enabled: maybe}]", "`enabled` must be true or false"),
    ("warc: {trust_http_content_type: 3}", "must be bool"),
    ("steps: [unclosed", "not valid YAML"),
])
def test_bad_recipe_is_one_line_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError) as error:
        build_cleaning_steps(load_recipe(str(path)), str(tmp_path), ["en"], html_input=True)
    assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_recipe_names_and_languages():
    with pytest.raises(RecipeError, match="built in: fineweb, fineweb2, none"):
        load_recipe("finewbe")
    assert parse_languages("en, es") == ["en", "es"] and parse_languages("all") is None
    with pytest.raises(RecipeError):
        parse_languages("en;es")


def test_datatrove_language_filter_works_offline_on_real_text(shared_data):
    """datatrove's own LanguageFilter with the offline lid.176 model, whichever `fasttext` module is installed."""
    lines = (shared_data / "text" / "dclm_majority_data.jsonl").read_text().splitlines()
    english = [Document(text=json.loads(line)["text"], id=str(i)) for i, line in enumerate(lines[:30])]
    spanish = Document(text="El Gobierno aprobó este martes un nuevo paquete de medidas para contener los precios de "
                            "la energía, que según el ministerio beneficiará a millones de hogares durante el invierno.",
                       id="es")
    language_filter = LanguageFilter(languages=["en"])
    language_filter.model = OfflineFT176LID(["en"])
    kept = list(language_filter.run(english + [spanish]))
    assert spanish not in kept and spanish.metadata["language"] == "es" and spanish.metadata["language_score"] > 0.65
    assert len(kept) >= 25 and all(doc.metadata["language"] == "en" for doc in kept)
    assert all(isinstance(doc.metadata["language_score"], float) for doc in kept)
