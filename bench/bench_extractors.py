"""Trafilatura (the default extractor) against Resiliparse (`--extractor resiliparse`): fidelity and speed on real
pages with known article bodies, and what the fineweb2 recipe keeps after each.

    git clone https://github.com/opendatalab/magic-html /tmp/magic-html     # its benchmark's hand-made answers
    python bench/bench_extractors.py --truth /tmp/magic-html/benchmark/data

1. Fidelity: zh-web-A holds 95 pages of magic-html's extraction benchmark (article and forum pages, mostly Chinese);
   `benchmark/data/<kind>/base.json` gives the text a person marked as each page's main content. For each page and
   extractor: precision, recall and F1 of the extracted words against it (bags of jieba words, CJK and Latin alike:
   ROUGE-1; magic-html's own score is ROUGE-L on the same words), and the share of pages with F1 >= 0.8.
2. Speed: CPU seconds per page of each extractor in this process (Trafilatura without the sandbox), on every HTML
   page of zh-web-A and news-200.
3. Kept documents: the fineweb2 recipe's steps after extraction (--languages of the pages) on each extractor's
   output; how many each keeps, and how many both keep.
"""
import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.extractors import Trafilatura  # noqa: E402

from pipeline.clean import build_cleaning_steps, load_recipe  # noqa: E402
from pipeline.clean.resiliparse_extract import resiliparse_text  # noqa: E402
from pipeline.read.warc import CheckedWarcReader  # noqa: E402

CRAWL = REPO.parent / "shared" / "data" / "crawl"
LANGUAGES = ["zh", "en", "ja", "es", "ru", "fr", "pt", "de", "it", "ar"]  # those of the two crawls with a file


def pages(name: str, work: Path) -> list[Document]:
    recipe = load_recipe("fineweb2")
    reader = CheckedWarcReader(str(CRAWL), [name], str(work / "warc" / name))
    for key, value in recipe.warc.items():
        setattr(reader, key, value)
    return list(reader.run())


def words(text: str) -> Counter:
    import jieba

    return Counter(w for w in jieba.lcut(text) if w.strip())


def rouge1(truth: str, text: str) -> dict:
    expected, found = words(truth), words(text)
    common = sum((expected & found).values())
    precision, recall = common / max(1, sum(found.values())), common / max(1, sum(expected.values()))
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if common else 0.0}


def extractors():
    trafilatura = Trafilatura(favour_precision=True, deduplicate=True)  # the fineweb2 recipe's settings
    return {"trafilatura": lambda html: trafilatura.extract(html) or "",
            "resiliparse": lambda html: resiliparse_text(html) or ""}


def kept_after(documents: list[Document], texts: dict[str, str], work: Path) -> set[str]:
    from bench_fineweb2 import run_chain

    plan = build_cleaning_steps(load_recipe("fineweb2"), str(work), LANGUAGES, html_input=True)
    names = [p.name for p in plan.recipe_steps]
    steps = [p.step for p in plan.recipe_steps[names.index("language_filter"):] if p.name != "decontaminate"]
    extracted = [Document(text=texts[d.id], id=d.id, metadata=dict(d.metadata)) for d in documents if texts[d.id]]
    kept, _, _ = run_chain(steps, extracted)
    return {d.id for d in kept}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--truth", type=Path, required=True, help="magic-html's benchmark/data folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_extractors"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    truth = {}
    for kind in ("article", "forum"):
        truth.update({sha: row["content"] for sha, row in
                      json.loads((args.truth / kind / "base.json").read_text(encoding="utf-8")).items()})
    index = [json.loads(line) for line in (CRAWL / "zh-web-A.index.jsonl").read_text().splitlines()]
    answer_of = {row["url"]: truth.get(Path(row["source_path"]).stem) for row in index
                 if row["source_repo"] == "opendatalab/magic-html"}
    documents = pages("zh-web-A.warc.gz", args.work) + pages("news-200.warc.gz", args.work)
    results, texts = {}, {}
    words("预热")  # jieba's dictionary, outside the timings
    for name, extract in extractors().items():
        extract("<html><body><p>warm up</p></body></html>")
        start = time.process_time()
        texts[name] = {d.id: extract(d.text) for d in documents}
        seconds = time.process_time() - start
        scores = [rouge1(answer_of[d.metadata["url"]], texts[name][d.id]) for d in documents
                  if answer_of.get(d.metadata.get("url"))]
        results[name] = {
            "pages": len(documents), "ms_per_page": round(1000 * seconds / len(documents), 2),
            "pages_per_second": round(len(documents) / seconds, 1), "scored_pages": len(scores),
            **{key: round(sum(s[key] for s in scores) / len(scores), 3) for key in ("precision", "recall", "f1")},
            "f1_at_least_0.8": round(sum(s["f1"] >= 0.8 for s in scores) / len(scores), 3),
            "empty": sum(not texts[name][d.id].strip() for d in documents)}
    kept = {name: kept_after(documents, texts[name], args.work / name) for name in texts}
    both = kept["trafilatura"] & kept["resiliparse"]
    summary = {"extractors": results, "kept": {name: len(ids) for name, ids in kept.items()}, "kept_by_both": len(both),
               "kept_agreement_jaccard": round(len(both) / max(1, len(kept["trafilatura"] | kept["resiliparse"])), 3)}
    print(f"{len(documents)} pages (zh-web-A + news-200); {results['trafilatura']['scored_pages']} with magic-html's "
          f"answer")
    print(f"{'extractor':12} {'ms/page':>8} {'pages/s':>8} {'precision':>9} {'recall':>7} {'F1':>6} {'F1>=0.8':>8} "
          f"{'empty':>6} {'kept':>5}")
    for name, row in results.items():
        print(f"{name:12} {row['ms_per_page']:>8} {row['pages_per_second']:>8} {row['precision']:>9} "
              f"{row['recall']:>7} {row['f1']:>6} {row['f1_at_least_0.8']:>8} {row['empty']:>6} "
              f"{summary['kept'][name]:>5}")
    print(f"kept by both: {len(both)} (Jaccard {summary['kept_agreement_jaccard']})")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


if __name__ == "__main__":
    main()
