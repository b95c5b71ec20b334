"""Resiliparse as the extraction step (`--extractor resiliparse`): DCLM's extractor, many times faster than
Trafilatura, opt-in because it keeps more of a page's boilerplate (measured in docs/data.md, "Extractors").

The call is DCLM's (mlfoundations/dclm, baselines/mappers/extractors.py): `extract_plain_text(html,
main_content=True)`, Resiliparse's own main-content heuristics with its defaults otherwise (alt texts kept, list
bullets, no link targets). It runs in the task's process: Resiliparse is C++ with no pathological slow paths of the
kind Trafilatura's per-page CPU budget exists for (pipeline/clean/extraction.py).
"""
from resiliparse.extract.html2text import extract_plain_text

DEFAULT_OPTIONS = {"main_content": True}


def resiliparse_text(page: str, **options) -> str:
    """The page's main text, as DCLM extracts it."""
    return extract_plain_text(page, **{**DEFAULT_OPTIONS, **options})
