"""How well the decontamination step finds evaluation examples in real documents, how often it fires on clean ones,
and what it costs inside the cleaning chain.

  recall     examples of every core task (up to --per-task each) planted in real documents (dclm's web pages,
             Wikipedia leads of the `sample` corpus) at a paragraph boundary: verbatim, and with k of the
             example's words replaced by words of the host (k = 1, 2, 3, 4, 6, 8; the same random positions for
             every setting of a seed); found = the step's match names the planted task and example
  false positives  the real documents themselves, none planted: dclm (499 Common Crawl pages), `sample`
             (10,033 Wikipedia leads), `sample-zh` (People's Daily, 1998), and what the fineweb / fineweb2 recipes
             keep of the crawls news-200, dolma-sample and zh-web-A; every hit is listed to be judged by a person
  cjk_n      Chinese has no core task: pieces of 40-80 characters of half the People's Daily articles play the
             examples, the other half and zh-web-A's Chinese pages the clean documents (same newspaper, same
             month: the harshest case for shared stock phrases); false positives and planted recall per n
  cost       `python -m pipeline.clean` with the fineweb recipe on dclm's text (filters only: the worst case for
             the step's share) and on news-200 (WARC, extraction included), the step's seconds over the chain's
             (datatrove's per-step time), --rounds times; and prepare's wall time on 100 documents with the step
             on and off (the index cached)
Writes bench/results/decontam.{json,md}.

    python bench/bench_decontam.py [--per-task 150] [--rounds 3]
    python bench/bench_decontam.py --quick      # small sizes: does it run? (prints, writes nothing)
"""
import argparse
import gzip
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"

import yaml  # noqa: E402

from gptstack import eval_data  # noqa: E402
from pipeline.clean.decontam import NGramIndex, Settings, tokens  # noqa: E402
from pipeline.clean.decontam_index import cached_index, load_index, suite_examples  # noqa: E402
from pipeline.read.corpora import sample_corpus_path, sample_zh_corpus_path  # noqa: E402

K_CHANGED = (0, 1, 2, 3, 4, 6, 8)


def jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def clean_documents() -> dict[str, list[str]]:
    return {"dclm": [d["text"] for d in jsonl(SHARED / "text" / "dclm_majority_data.jsonl")],
            "sample (Wikipedia)": [d["extract"] for d in json.load(open(sample_corpus_path())).values()],
            "sample-zh (People's Daily)": people_daily()}


def people_daily() -> list[str]:
    """The sample-zh articles as the corpus reader makes them (segmented words joined, tags removed)."""
    from pipeline.read.readers import SegmentedNewsReader

    reader = SegmentedNewsReader(str(sample_zh_corpus_path()), tempfile.mkdtemp())
    return [doc.text for doc in reader.run()]


def plant(host: str, text: str, rng: random.Random) -> str:
    paragraphs = host.split("\n")
    at = rng.randrange(len(paragraphs) + 1)
    return "\n".join(paragraphs[:at] + [text] + paragraphs[at:])


def paraphrase(text: str, k: int, rng: random.Random, vocabulary: list[str]) -> str:
    """k words replaced (for text without spaces, Chinese: k characters)."""
    spaced = " " in text.strip()
    words = text.split() if spaced else list(text)
    for position in rng.sample(range(len(words)), min(k, len(words))):
        words[position] = rng.choice(vocabulary)
    return " ".join(words) if spaced else "".join(words)


def recall(index: NGramIndex, examples: list[tuple[str, int, str]], hosts: list[str], seed: int = 0) -> dict:
    """recall: the document is dropped; named: with the planted task; exact: and the planted example (BoolQ
    asks several questions about one passage, HellaSwag continues one context several times: another example of
    the same text is as right)."""
    vocabulary = [w for host in hosts[:200] for w in host.split() if w.isalpha() and len(w) > 3]
    if not vocabulary:  # Chinese hosts: characters
        vocabulary = [c for host in hosts[:200] for c in host if "\u4e00" <= c <= "\u9fff"]
    out = {}
    for k in K_CHANGED:
        rng = random.Random(seed)
        found, named, exact, by_task = 0, 0, 0, {}
        for task, number, text in examples:
            document = plant(rng.choice(hosts), paraphrase(text, k, rng, vocabulary) if k else text, rng)
            match = index.match(document)
            found += match is not None
            named += match is not None and match.task == task
            exact += match is not None and (match.task, match.index) == (task, number)
            entry = by_task.setdefault(task, [0, 0])
            entry[0] += match is not None
            entry[1] += 1
        out[k] = {"recall": round(found / len(examples), 4), "named_task": round(named / len(examples), 4),
                  "exact_example": round(exact / len(examples), 4),
                  "by_task": {t: round(a / b, 4) for t, (a, b) in by_task.items()}}
    return out


def false_positives(index: NGramIndex, corpora: dict[str, list[str]]) -> dict:
    out = {}
    for name, documents in corpora.items():
        start = time.process_time()
        hits = [(i, index.match(text)) for i, text in enumerate(documents)]
        seconds = time.process_time() - start
        hits = [(i, m) for i, m in hits if m]
        out[name] = {"documents": len(documents), "hits": len(hits), "rate": round(len(hits) / len(documents), 5),
                     "mb_per_cpu_s": round(sum(map(len, documents)) / 1e6 / max(seconds, 1e-9), 2),
                     "listed": [{"doc": i, "task": m.task, "example": m.index, "ngrams": m.ngrams,
                                 "ngram": m.ngram, "excerpt": excerpt(documents[i], m.ngram)} for i, m in hits]}
    return out


def excerpt(text: str, ngram: str) -> str:
    first = ngram.split()[0]
    at = text.lower().find(first)
    return " ".join(text[max(0, at - 60): at + 200].split())


def cjk_choice(people: list[str], zh_web: list[str], quick: bool) -> dict:
    """Pieces of half the articles as pseudo-examples; the other half and zh-web-A as clean documents."""
    rng = random.Random(1)
    half = len(people) // 2
    pieces = []
    for number, text in enumerate(people[:half]):
        chars = "".join(text.split())
        if len(chars) >= 120:
            start = rng.randrange(len(chars) - 80)
            pieces.append(("zh_pseudo", number, chars[start:start + rng.randint(40, 80)]))
    clean = people[half:] + zh_web
    if quick:
        pieces, clean = pieces[:100], clean[:200]
    out = {"pseudo_examples": len(pieces), "clean_documents": len(clean), "by_n": {}}
    for n in (10, 13, 15, 20, 25, 30):
        index = NGramIndex.build(pieces, Settings(cjk_n=n, cjk_min_n=min(n, 12)))
        hits = [m for m in map(index.match, clean) if m]
        hosts = people[half:half + 300]
        planted = recall(index, pieces[:300], hosts, seed=n)
        out["by_n"][n] = {"false_positives": len(hits), "rate": round(len(hits) / len(clean), 5),
                          "examples": [m.ngram.replace(" ", "") for m in hits[:5]],
                          "recall_verbatim": planted[0]["recall"],
                          "recall_changed": {k: planted[k]["recall"] for k in (1, 2, 3, 4)}}
    return out


def run_clean(source: str, out: Path, recipe: str, languages: str, limit: int | None = None) -> dict:
    command = [sys.executable, "-m", "pipeline.clean", "--input", source, "--output", str(out), "--recipe", recipe,
               "--languages", languages, "--workers", "1"] + (["--limit", str(limit)] if limit else [])
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
    report = json.loads((out / "report.json").read_text())
    total = sum(step["seconds"] for step in report["steps"])
    step = report["steps"][-1]
    assert step["step"] == "decontaminate"
    kept = [d["text"] for path in sorted((out / "kept").glob("*.jsonl.gz")) for d in jsonl(path)]
    return {"chain_seconds": round(total, 3), "step_seconds": step["seconds"],
            "share": round(step["seconds"] / total, 4) if total else None, "docs_in": step["docs_in"],
            "dropped": step["dropped"], "kept": kept}


def prepare_seconds(source: Path, recipe: str, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline.prepare", "--input", str(source), "--output", str(out),
                    "--recipe", recipe, "--val-tokens", "1000", "--shard-tokens", "20000"], cwd=REPO, check=True,
                   capture_output=True, text=True)
    return time.perf_counter() - start


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "runs": [round(v, 4) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-task", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    per_task, rounds = (10, 1) if args.quick else (args.per_task, args.rounds)
    result = {"settings": vars(Settings())}
    work = Path(tempfile.mkdtemp(prefix="bench_decontam_"))

    builds = []
    for _ in range(1 if args.quick else rounds):
        start = time.perf_counter()
        folder = cached_index("core", cache_dir=work / f"cache{len(builds)}")
        builds.append(time.perf_counter() - start)
    start = time.perf_counter()
    index = load_index(folder)
    result["index"] = {"build_seconds": spread(builds), "load_seconds": round(time.perf_counter() - start, 4),
                       "hashes": {n: len(keys) for n, (keys, _) in index.tables.items()}, "stats": index.stats}

    corpora = clean_documents()
    rng = random.Random(0)
    examples = []
    for task in eval_data.resolve_tasks("core"):
        chosen = [e for e in suite_examples([task])]
        examples += rng.sample(chosen, min(per_task, len(chosen)))
    covered = [e for e in examples if len(tokens(e[2])) >= Settings().min_n]
    hosts = corpora["dclm"] + corpora["sample (Wikipedia)"][:500]
    result["recall"] = {"planted": len(examples), "covered": len(covered),
                        "all": recall(index, examples, hosts), "covered_only": recall(index, covered, hosts)}

    costs, news, zh = [], None, None
    for round_number in range(rounds):
        costs.append(run_clean(str(SHARED / "text" / "dclm_majority_data.jsonl"), work / f"dclm{round_number}",
                               "fineweb", "en", 100 if args.quick else None))
    crawls = ",".join(str(SHARED / "crawl" / name) for name in ("news-200.warc.gz", "dolma-sample-0000.warc.gz",
                                                                    "dolma-sample-0001.warc.gz"))
    news = run_clean(crawls, work / "crawl", "fineweb", "all", 40 if args.quick else None)
    zh = run_clean(str(SHARED / "crawl" / "zh-web-A.warc.gz"), work / "zh", "fineweb2", "zh,en,ja",
                   40 if args.quick else None)
    result["cost"] = {"dclm_text_fineweb": {"share": spread([c["share"] for c in costs]),
                                            "step_seconds": spread([c["step_seconds"] for c in costs]),
                                            "chain_seconds": spread([c["chain_seconds"] for c in costs]),
                                            "docs_in": costs[0]["docs_in"], "dropped": costs[0]["dropped"]},
                      "crawls_warc_fineweb": {k: v for k, v in news.items() if k != "kept"},
                      "zh_web_warc_fineweb2": {k: v for k, v in zh.items() if k != "kept"}}

    corpora["crawls kept by fineweb (news-200, dolma)"] = news["kept"]
    corpora["zh-web-A kept by fineweb2"] = zh["kept"]
    if args.quick:
        corpora = {name: documents[:300] for name, documents in corpora.items()}
    result["false_positives"] = false_positives(index, corpora)
    result["cjk_n"] = cjk_choice(corpora["sample-zh (People's Daily)"] if args.quick else people_daily(),
                                 zh["kept"], args.quick)

    recipe = yaml.safe_load((REPO / "configs" / "recipes" / "fineweb.yaml").read_text())
    next(s for s in recipe["steps"] if s["step"] == "decontaminate")["enabled"] = False
    (work / "off.yaml").write_text(yaml.safe_dump(recipe))
    source = work / "docs.jsonl"
    source.write_text("\n".join((SHARED / "text" / "dclm_majority_data.jsonl").read_text().splitlines()[:100]) + "\n")
    on, off = [], []
    for round_number in range(rounds):
        on.append(prepare_seconds(source, "fineweb", work / f"on{round_number}"))
        off.append(prepare_seconds(source, str(work / "off.yaml"), work / f"off{round_number}"))
    result["prepare_100_docs_wall_seconds"] = {"on": spread(on), "off": spread(off),
                                               "added": round(statistics.median(on) - statistics.median(off), 3)}

    if not args.quick:  # (a quick run's numbers are not results)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "decontam.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        (RESULTS / "decontam.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    lines = ["# Decontamination benchmark (bench/bench_decontam.py)", "",
             f"Index of the core suite: {sum(r['index']['hashes'].values()):,} hashes; built in "
             f"{r['index']['build_seconds']['median']} s (median), loaded in {r['index']['load_seconds']} s.", "",
             "## Planted examples: recall by words changed", "",
             f"{r['recall']['planted']} examples planted ({r['recall']['covered']} of at least min_n words).", "",
             "| words changed | recall (all planted) | recall (examples of >= min_n words) | task named | "
             "example named |", "|---:|---:|---:|---:|---:|"]
    for k in r["recall"]["all"]:
        covered = r["recall"]["covered_only"][k]
        lines.append(f"| {k} | {r['recall']['all'][k]['recall']} | {covered['recall']} | {covered['named_task']} | "
                     f"{covered['exact_example']} |")
    lines += ["", "Per task, verbatim / 1 / 3 words changed:", "", "| task | 0 | 1 | 3 |", "|---|---:|---:|---:|"]
    for task in r["recall"]["all"][0]["by_task"]:
        lines.append(f"| {task} | " + " | ".join(str(r["recall"]["all"][k]["by_task"][task]) for k in (0, 1, 3))
                     + " |")
    lines += ["", "## False positives on real documents (nothing planted)", "",
              "| corpus | documents | hits | rate | MB per CPU-second |", "|---|---:|---:|---:|---:|"]
    for name, fp in r["false_positives"].items():
        lines.append(f"| {name} | {fp['documents']:,} | {fp['hits']} | {fp['rate']:.3%} | {fp['mb_per_cpu_s']} |")
    lines += ["", "Every hit:", ""]
    for name, fp in r["false_positives"].items():
        for hit in fp["listed"]:
            lines.append(f"- {name} #{hit['doc']}: {hit['task']} example {hit['example']} ({hit['ngrams']} n-grams): "
                         f"`{hit['ngram']}`")
    lines += ["", "## Chinese character n-grams: false positives and recall by n", "",
              f"{r['cjk_n']['pseudo_examples']} pseudo-examples, {r['cjk_n']['clean_documents']} clean documents.", "",
              "| n | false positives | rate | recall verbatim | 1 char changed | 2 | 3 | 4 |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, row in r["cjk_n"]["by_n"].items():
        changed = row["recall_changed"]
        lines.append(f"| {n} | {row['false_positives']} | {row['rate']:.3%} | {row['recall_verbatim']} | "
                     + " | ".join(str(changed[k]) for k in changed) + " |")
    c = r["cost"]
    lines += ["", "## Cost in the cleaning chain (datatrove's per-step seconds, one worker)", "",
              "| input | docs reaching the step | step s | chain s | share |", "|---|---:|---:|---:|---:|",
              f"| dclm text, fineweb (median of {len(c['dclm_text_fineweb']['share']['runs'])}; share min-max "
              f"{c['dclm_text_fineweb']['share']['min']:.1%}-{c['dclm_text_fineweb']['share']['max']:.1%}) | "
              f"{c['dclm_text_fineweb']['docs_in']} | {c['dclm_text_fineweb']['step_seconds']['median']} | "
              f"{c['dclm_text_fineweb']['chain_seconds']['median']} | "
              f"{c['dclm_text_fineweb']['share']['median']:.1%} |"]
    for name in ("crawls_warc_fineweb", "zh_web_warc_fineweb2"):
        row = c[name]
        lines.append(f"| {name} | {row['docs_in']} | {row['step_seconds']} | {row['chain_seconds']} | "
                     f"{row['share']:.1%} |")
    p = r["prepare_100_docs_wall_seconds"]
    lines += ["", f"prepare --recipe fineweb on 100 dclm documents, wall seconds (median of "
                  f"{len(p['on']['runs'])}): step on {p['on']['median']} ({p['on']['min']}-{p['on']['max']}), "
                  f"off {p['off']['median']} ({p['off']['min']}-{p['off']['max']}): added {p['added']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
