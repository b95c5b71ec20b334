"""The fineweb2 recipe against datatrove's own FineWeb-2 chain, on a real Chinese crawl: same kept documents, speed.

    python bench/bench_fineweb2.py                       # ../shared/data/crawl/zh-web-A.warc.gz, Chinese
    python bench/bench_fineweb2.py --input crawl.warc.gz --language zh --repeats 3 --json out.json
    python bench/bench_fineweb2.py --mix --replicas 3 --repeats 2   # the whole chain from WARC on a language mix

1. Extraction, once, apart: the WARC reader and Trafilatura of the recipe (the same on both sides; it would hide
   the difference), timed in CPU seconds.
2. On those texts, one process each, chained as a datatrove pipeline runs them:
     reference  datatrove's classes composed directly with FineWeb-2's parameters (fineweb-2-pipeline.py steps 3,
                5 and 6: LanguageFilter, GopherRepetitionFilter, FineWebQualityFilter, GopherQualityFilter,
                FTFYFormatter, PIIFormatter, SymbolLinesFormatter), the language's configs/fineweb2 values and its
                language-script word tokenizer; the language filter reads lid.176 offline (FineWeb-2 used GlotLID);
     recipe     the fineweb2 recipe's steps after extraction, as `pipeline.prepare` builds them.
   Both see the same documents; the kept documents (ids and final text) must be the same. Dedup is not in either
   chain (it is its own stage here; bench/bench_dedup.py measures it).
3. Speed: CPU seconds of each chain (best of --repeats, each with fresh steps so no cache is carried over), the ratio,
   and documents per second per core for each step of the recipe (its datatrove step timings scaled to CPU time).

--mix: instead, the whole chain from WARC (reader, URL filter, language gate, extraction, filters) on a mix of
mostly non-Chinese pages with a few percent of Chinese ones, against datatrove's own chain (bench/fineweb2_mix.py).
"""
import argparse
import copy
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import (FineWebQualityFilter, GopherQualityFilter,  # noqa: E402
                                        GopherRepetitionFilter, LanguageFilter)
from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter, SymbolLinesFormatter  # noqa: E402

from pipeline.clean import build_cleaning_steps, load_recipe  # noqa: E402
from pipeline.clean.langid import OfflineFT176LID  # noqa: E402
from pipeline.clean.languages import load_languages  # noqa: E402
from pipeline.read.warc import CheckedWarcReader  # noqa: E402

DEFAULT_INPUT = REPO.parent / "shared" / "data" / "crawl" / "zh-web-A.warc.gz"


def extract(path: Path, recipe, work: Path) -> tuple[list[Document], float, int]:
    """(documents with their main text, CPU seconds of extraction, pages read)."""
    reader = CheckedWarcReader(str(path.parent), [path.name], str(work / "warc"))
    for key, value in recipe.warc.items():
        setattr(reader, key, value)
    plan = build_cleaning_steps(recipe, str(work / "extract"), ["zh"], html_input=True)
    trafilatura = next(p.step for p in plan.recipe_steps if p.name == "trafilatura")
    pages = list(reader.run())
    start = cpu_with_children()
    documents = list(trafilatura.run(iter(pages)))  # (its sandbox process has ended and been waited for here)
    return documents, cpu_with_children() - start, len(pages)


def cpu_with_children() -> float:
    """CPU seconds of this process and of its finished children (Trafilatura runs in a sandbox process)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def reference_chain(language: str, published_line_ends: bool = False):
    """datatrove's FineWeb-2 chain for one language, composed from datatrove's classes. published_line_ends: with
    FineWeb-2's own line-end punctuation (datatrove's default) instead of the recipe's, which adds 。” and the like."""
    values = load_languages()[language]
    quality = values.fineweb_quality()
    if published_line_ends:
        quality.pop("stop_chars", None)
    lid = LanguageFilter(languages=[language], language_threshold=values.min_language_score)
    lid.model = OfflineFT176LID([language])  # the one substitution: lid.176 from the offline .ftz
    code = values.code
    return [lid, GopherRepetitionFilter(**values.gopher_repetition(), language=code),
            FineWebQualityFilter(**quality, language=code),
            GopherQualityFilter(**values.gopher_quality(), language=code),
            FTFYFormatter(), PIIFormatter(), SymbolLinesFormatter(symbols_to_remove=["|"], replace_char="\n")]


def recipe_chain(recipe, language: str, work: Path):
    plan = build_cleaning_steps(recipe, str(work), [language], html_input=True)
    names = [p.name for p in plan.recipe_steps]
    return [p.step for p in plan.recipe_steps[names.index("language_filter"):]], names[names.index("language_filter"):]


def run_chain(steps, documents: list[Document]) -> tuple[list[Document], float, float]:
    """(kept documents, CPU seconds, wall seconds) of the steps chained as datatrove chains them."""
    data = iter(copy.deepcopy(documents))
    for step in steps:
        data = step.run(data)
    wall, cpu = time.perf_counter(), time.process_time()
    kept = list(data)
    return kept, time.process_time() - cpu, time.perf_counter() - wall


def warm_up(language: str) -> None:
    """Load what both sides load once per process (lid.176, jieba's dictionary), outside the timings."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    load_word_tokenizer(load_languages()[language].code).word_tokenize("预热一下：分词词典 warm up")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--language", default="zh", help="lid.176 label of a configs/fineweb2 language (default zh)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_fineweb2"))
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--mix", action="store_true", help="the whole chain from WARC on a language mix (see above)")
    parser.add_argument("--replicas", type=int, default=3, help="--mix: WARC files in the mix (default 3)")
    parser.add_argument("--zh-share", type=float, default=0.05,
                        help="--mix: share of zh-web-A's Chinese pages added to each file (default 0.05)")
    args = parser.parse_args(argv)
    if args.mix:
        from fineweb2_mix import bench_mix, print_mix

        summary = bench_mix(args, args.input.parent, reference_chain, warm_up)
        print_mix(summary)
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
        return summary
    recipe = load_recipe("fineweb2")
    documents, extraction_cpu, pages = extract(args.input, recipe, args.work)
    warm_up(args.language)
    best = {"reference": None, "recipe": None}
    for repeat in range(args.repeats):
        for side in ("reference", "recipe"):  # fresh steps every time: no cache carried over
            if side == "reference":
                steps, names = reference_chain(args.language), None
            else:
                steps, names = recipe_chain(recipe, args.language, args.work / f"recipe-{repeat}")
            kept, cpu, wall = run_chain(steps, documents)
            if best[side] is None or cpu < best[side]["cpu"]:
                best[side] = {"cpu": cpu, "wall": wall, "kept": kept, "steps": steps, "names": names}
    ref, ours = best["reference"], best["recipe"]
    published, _, _ = run_chain(reference_chain(args.language, published_line_ends=True), documents)
    same_ids = [d.id for d in ref["kept"]] == [d.id for d in ours["kept"]]
    same_text = same_ids and all(a.text == b.text for a, b in zip(ref["kept"], ours["kept"]))
    per_step = []
    scale = ours["cpu"] / max(ours["wall"], 1e-9)  # datatrove times steps in wall seconds; one process: ~CPU
    for name, step in zip(ours["names"], ours["steps"]):
        seconds = step.stats.time_stats.total * scale
        docs_in = int(step.stats.stats["total"].total) if "total" in step.stats.stats else 0
        per_step.append({"step": name, "documents": docs_in, "cpu_seconds": round(seconds, 3),
                         "docs_per_second_per_core": round(docs_in / seconds, 1) if seconds else None})
    result = {
        "input": str(args.input), "language": args.language, "pages": pages, "extracted": len(documents),
        "extraction": {"cpu_seconds": round(extraction_cpu, 2),
                       "docs_per_second_per_core": round(pages / max(extraction_cpu, 1e-9), 1)},
        "reference": {"cpu_seconds": round(ref["cpu"], 3), "kept": len(ref["kept"])},
        "recipe": {"cpu_seconds": round(ours["cpu"], 3), "kept": len(ours["kept"]), "steps": per_step},
        "speedup": round(ref["cpu"] / max(ours["cpu"], 1e-9), 2),
        "same_kept_documents": same_ids, "same_kept_text": same_text,
        "kept_with_published_line_ends": len(published),
        "same_kept_with_published_line_ends": [d.id for d in published] == [d.id for d in ref["kept"]],
    }
    print(f"{args.input.name}: {pages} pages, {len(documents)} with main text; extraction (apart, same on both sides): "
          f"{extraction_cpu:.1f} CPU s, {result['extraction']['docs_per_second_per_core']} pages/s/core")
    print(f"filter chain after extraction, {args.language}, 1 core, best of {args.repeats}:")
    print(f"  datatrove's FineWeb-2 chain: {ref['cpu']:.2f} CPU s, keeps {len(ref['kept'])}")
    print(f"  fineweb2 recipe:             {ours['cpu']:.2f} CPU s, keeps {len(ours['kept'])}"
          f"  -> {result['speedup']}x faster; same kept documents: {same_ids}, same text: {same_text}")
    print(f"  with FineWeb-2's own line-end punctuation (no 。” etc.) datatrove's chain keeps {len(published)} "
          f"(same documents: {result['same_kept_with_published_line_ends']})")
    print("  recipe per step (documents in, docs/s/core):")
    for row in per_step:
        print(f"    {row['step']:18} {row['documents']:5}  {row['docs_per_second_per_core']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
