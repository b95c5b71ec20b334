"""The language gate's recall: of the documents the fineweb2 recipe keeps without the gate, how many the gate lets
through, for each kept language; and how many pages it lets through (what extraction is still paid for).

    python bench/bench_gate.py                               # the real crawls of ../shared/data/crawl
    python bench/bench_gate.py --input a.warc.gz b.warc.gz --languages zh,ja,ru --json out.json

1. Every page of the crawls, read and extracted once (URL filter + Trafilatura, the recipe's settings).
2. For each language: the recipe's steps after extraction with --languages LANG (the full chain, no gate, no
   dedup) -> the documents it keeps.
3. The gate (pipeline/clean/gate.py) of that language on every page's HTML: recall = kept documents it lets through
   / kept documents; pages it lets through; its CPU time per page.
A language whose word tokenizer needs an extra that is not installed (ko, vi: the `multilingual` extra) is skipped.
"""
import argparse
import copy
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.clean import build_cleaning_steps, load_recipe  # noqa: E402
from pipeline.clean.gate import GateRule  # noqa: E402
from pipeline.clean.languages import LanguageConfigError  # noqa: E402
from pipeline.read.warc import CheckedWarcReader  # noqa: E402

CRAWL = REPO.parent / "shared" / "data" / "crawl"
DEFAULT_INPUT = [CRAWL / name for name in ("news-200.warc.gz", "zh-web-A.warc.gz", "dolma-sample-0000.warc.gz",
                                           "dolma-sample-0001.warc.gz")]
DEFAULT_LANGUAGES = "zh,ja,ko,ru,uk,ar,fa,el,hi,th,he,es,pt,fr,de,it,en,tr,id,pl,nl"
SKIPPED_STEPS = ("decontaminate",)  # not a language decision; needs its index built


def read_and_extract(paths: list[Path], work: Path):
    """(pages as read, documents with their main text)."""
    recipe = load_recipe("fineweb2")
    pages, documents = [], []
    for path in paths:
        reader = CheckedWarcReader(str(path.parent), [path.name], str(work / "warc" / path.name))
        for key, value in recipe.warc.items():
            setattr(reader, key, value)
        read = list(reader.run())
        plan = build_cleaning_steps(recipe, str(work / "extract" / path.name), ["zh"], html_input=True,
                                    language_gate=False)
        data = iter(copy.deepcopy(read))
        for planned in plan.recipe_steps:
            if planned.name in ("url_filter", "trafilatura"):
                data = planned.step.run(data)
        pages += read
        documents += list(data)
    return pages, documents


def kept_by_full_chain(documents, language: str, work: Path) -> set[str]:
    plan = build_cleaning_steps(load_recipe("fineweb2"), str(work), [language], html_input=True, language_gate=False)
    names = [p.name for p in plan.recipe_steps]
    data = iter(copy.deepcopy(documents))
    for planned in plan.recipe_steps[names.index("language_filter"):]:
        if planned.name not in SKIPPED_STEPS:
            data = planned.step.run(data)
    return {doc.id for doc in data}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, nargs="+", default=DEFAULT_INPUT)
    parser.add_argument("--languages", default=DEFAULT_LANGUAGES)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_gate"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    pages, documents = read_and_extract(args.input, args.work)
    rows = []
    for language in args.languages.split(","):
        try:
            kept = kept_by_full_chain(documents, language, args.work / "chain" / language)
        except LanguageConfigError as error:
            print(f"{language}: skipped ({error})")
            continue
        rule = GateRule([language])
        start = time.process_time()
        passed = {page.id for page in pages if rule.check(page.text)[0]}
        seconds = time.process_time() - start
        lost = sorted(kept - passed)
        rows.append({"language": language, "kept_by_full_chain": len(kept), "kept_with_gate": len(kept & passed),
                     "recall": round(len(kept & passed) / len(kept), 4) if kept else None,
                     "pages": len(pages), "pages_through_gate": len(passed),
                     "gate_ms_per_page": round(1000 * seconds / len(pages), 2),
                     "lost": [next(p.metadata.get("url") for p in pages if p.id == i) for i in lost]})
    total_kept = sum(r["kept_by_full_chain"] for r in rows)
    summary = {"inputs": [str(p) for p in args.input], "pages": len(pages), "languages": rows,
               "recall_all": round(sum(r["kept_with_gate"] for r in rows) / max(1, total_kept), 4)}
    print(f"{len(pages)} pages of {', '.join(p.name for p in args.input)}")
    print(f"{'lang':5} {'kept (full chain)':>17} {'kept with gate':>14} {'recall':>7} {'pages through gate':>18} "
          f"{'gate ms/page':>12}")
    for r in rows:
        print(f"{r['language']:5} {r['kept_by_full_chain']:>17} {r['kept_with_gate']:>14} {str(r['recall']):>7} "
              f"{r['pages_through_gate']:>18} {r['gate_ms_per_page']:>12}" + (f"  lost: {r['lost']}" if r["lost"]
                                                                               else ""))
    print(f"all languages: {summary['recall_all']} of {total_kept} kept documents")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


if __name__ == "__main__":
    main()
