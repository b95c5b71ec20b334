"""`bench_fineweb2.py --mix`: the whole chain from WARC, on a language mix like a Common Crawl file, against datatrove's
own FineWeb-2 chain, for a run that keeps one language (zh by default).

The mix (built here, in --work, never committed): every response record of news-200 (many languages), the two dolma
samples (real crawler output, non-HTML payloads included) and zh-web-A's non-Chinese pages, plus --zh-share of
pages drawn from zh-web-A's Chinese ones, shuffled; --replicas such files, each with its own draw and order.

Each side reads the mix's WARC files and runs to the end of FineWeb-2's chain (no dedup, no tokenizer), one process:
  datatrove  WarcReader -> URLFilter -> Trafilatura(favour_precision, timeout 1 s) -> LanguageFilter -> Gopher
             repetition -> FineWeb quality -> Gopher quality -> FTFY -> PII -> SymbolLines, FineWeb-2's values for
             the language (bench_fineweb2.reference_chain); offline lid.176 and tldextract's bundled suffix list;
  ours       CheckedWarcReader -> the fineweb2 recipe's steps as `pipeline.prepare` builds them (the language gate
             before extraction), in three variants: gate off (the full chain), gate on, gate on + Resiliparse.
CPU seconds include the extraction sandbox processes. Reported: pages per CPU-second, the speed-up over datatrove,
and the agreement of the kept documents of the language (ids: same set; a variant that loses one is visible).
Each chain also runs on a one-page WARC file (a Chinese article all keep): its CPU time there is the task's fixed
cost (starting the extraction sandbox, loading lid.176, tiktoken for the report's token counts), which a real Common Crawl file (~35k pages; PAGES_PER_CC_FILE) spreads over all its
pages. `per_page_ms` = (CPU - fixed) / pages, and `cc_file_*` the speed on such a file: an estimate from the two.
"""
import copy
import io
import json
import random
import time
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

PAGES_PER_CC_FILE = 35_000  # response records of one CC-MAIN WARC file (~1 GB gzipped): docs/performance.md
ONE_PAGE_URL = "https://news.sina.com.cn/c/2024-05-10/doc-inausehc2630922.shtml"
OTHER_FILES = ("news-200.warc.gz", "dolma-sample-0000.warc.gz", "dolma-sample-0001.warc.gz")
RECIPE_ONLY = ("c4_quality", "opencc", "decontaminate")  # not in FineWeb-2's chain: left out of ours for the bench


def response_records(path: Path) -> list[tuple[str, bytes, str]]:
    """(url, payload, Content-Type) of every response record of a WARC file."""
    records = []
    with open(path, "rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type == "response":
                content_type = record.http_headers.get_header("Content-Type") if record.http_headers else None
                records.append((record.rec_headers.get_header("WARC-Target-URI"), record.content_stream().read(),
                                content_type or "application/octet-stream"))
    return records


def build_mix(crawl: Path, folder: Path, replicas: int, zh_share: float, seed: int = 0) -> dict:
    """Write `replicas` shuffled WARC files of the mix into `folder`; what is in them."""
    others = [r for name in OTHER_FILES for r in response_records(crawl / name)]
    index = [json.loads(line) for line in (crawl / "zh-web-A.index.jsonl").read_text().splitlines()]
    language_of = {row["url"]: row["lang"] for row in index}
    zh_web = response_records(crawl / "zh-web-A.warc.gz")
    chinese = [r for r in zh_web if language_of.get(r[0]) == "zh"]
    others += [r for r in zh_web if language_of.get(r[0]) != "zh"]
    per_file = max(1, round(len(others) * zh_share / (1 - zh_share)))
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for number in range(replicas):
        records = others + rng.sample(chinese, per_file)
        rng.shuffle(records)
        with open(folder / f"mix-{number:02d}.warc.gz", "wb") as f:
            writer = WARCWriter(f, gzip=True)
            for url, payload, content_type in records:
                headers = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
                writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(payload),
                                                              http_headers=headers))
    return {"files": replicas, "records_per_file": len(others) + per_file, "zh_web_chinese_per_file": per_file,
            "bytes": sum(p.stat().st_size for p in folder.glob("*.warc.gz"))}


def cpu_with_children() -> float:
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def datatrove_chain(folder: Path, language: str, reference_chain):
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import URLFilter
    from datatrove.pipeline.readers import WarcReader
    from tldextract import TLDExtract

    url_filter = URLFilter()
    url_filter.tldextractor = TLDExtract(suffix_list_urls=())  # offline: the bundled public-suffix list
    return [WarcReader(str(folder), glob_pattern="*.warc.gz"), url_filter,
            Trafilatura(favour_precision=True, timeout=1.0), *reference_chain(language)]


def our_chain(folder: Path, language: str, work: Path, gate: bool, extractor: str | None):
    from pipeline.clean import build_cleaning_steps, load_recipe
    from pipeline.read.warc import CheckedWarcReader

    recipe = load_recipe("fineweb2")
    reader = CheckedWarcReader(str(folder), sorted(p.name for p in folder.glob("*.warc.gz")), str(work / "warc"))
    for key, value in recipe.warc.items():
        setattr(reader, key, value)
    plan = build_cleaning_steps(recipe, str(work), [language], html_input=True, language_gate=gate,
                                extractor=extractor)
    planned = [p for p in plan.recipe_steps if p.name not in RECIPE_ONLY]
    return [reader, *[p.step for p in planned]], ["read", *[p.name for p in planned]]


def run(steps) -> tuple[list, float]:
    for step in steps:  # the URL filter's block lists and suffix list: loaded once per task (~3 s), not timed
        if hasattr(step, "download_data"):
            step.download_data()
            step.tldextractor("http://warm.up.example.com/")
    start = cpu_with_children()
    data = None
    for step in steps:
        data = step.run(data) if data is not None else step.run()
    kept = list(data)  # (the generators are done: the sandbox processes have ended and been waited for)
    return kept, cpu_with_children() - start


def per_step(steps, names, cpu: float, wall_total: float) -> list[dict]:
    """Pages in and pages/s per core of each step (datatrove's wall timings, scaled to the run's CPU time)."""
    scale = cpu / max(wall_total, 1e-9)
    rows = []
    for name, step in zip(names, steps):
        seconds = step.stats.time_stats.total * scale
        stats = step.stats.stats
        count = int(stats["total"].total) if "total" in stats else int(stats["records"].total) if "records" in stats \
            else 0
        rows.append({"step": name, "pages": count, "cpu_seconds": round(seconds, 3),
                     "pages_per_second_per_core": round(count / seconds, 1) if seconds > 0 else None})
    return rows


def bench_mix(args, crawl: Path, reference_chain, warm_up) -> dict:
    """reference_chain, warm_up: bench_fineweb2's (datatrove's filters after extraction; loading lid.176, jieba)."""
    folder = args.work / "mix"
    mix = build_mix(crawl, folder, args.replicas, args.zh_share)
    warm_up(args.language)
    variants = {"datatrove": None, "gate_off": (False, None), "gate": (True, None),
                "gate_resiliparse": (True, "resiliparse")}
    # a one-page file: each chain runs on it first to warm up (imports, the sandbox's first start), then once per
    # repeat for its fixed cost
    one_page = args.work / "one-page"
    if not one_page.exists():
        one_page.mkdir(parents=True)
        # a Chinese article every chain keeps: its fixed costs all start (sandbox, lid.176, the word split, tiktoken)
        first = [r for r in response_records(crawl / "zh-web-A.warc.gz") if r[0] == ONE_PAGE_URL]
        with open(one_page / "one.warc.gz", "wb") as f:
            writer = WARCWriter(f, gzip=True)
            for url, payload, content_type in first:
                headers = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
                writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(payload),
                                                              http_headers=headers))
    results = {name: {"cpu": [], "kept": None, "fixed": []} for name in variants}
    for repeat in range(-1, args.repeats):
        for name, variant in variants.items():
            for where in ([one_page] if repeat < 0 else [one_page, folder]):
                result = run_variant(name, variant, where, args, reference_chain, repeat)
                if repeat < 0:
                    continue
                if where == one_page:
                    results[name]["fixed"].append(result[1])
                    continue
                kept, cpu, steps, names, wall = result
                results[name]["documents"] = kept
                results[name]["cpu"].append(cpu)
                results[name]["kept"] = sorted(d.id for d in kept)
                if names and cpu <= min(results[name]["cpu"]):
                    results[name]["steps"] = per_step(steps, names, cpu, wall)
    later = later_stages(results["gate"].pop("documents"), args.work / "later")
    for result in results.values():
        result.pop("documents", None)
    (args.work / "raw.json").write_text(json.dumps(results))
    return {**summarize(results, mix, args), "later_stages": later}


def later_stages(documents: list, work: Path, passes: int = 5) -> dict:
    """Per-document CPU of the stages after cleaning, on the kept documents: dedup's MinHash signatures (the
    fineweb2 recipe's settings, each document's own word tokenizer) and tokenization (GPT-2's BPE, as in the bench's
    runs; a trained 64k tokenizer is also tiktoken)."""
    from pipeline.clean import load_recipe
    from pipeline.dedup import minhash_signature, parse_dedup_section
    from pipeline.tokenizer.tokenizer import Tokenizer

    recipe = load_recipe("fineweb2")
    config = parse_dedup_section(recipe.path, recipe.dedup, [s.step for s in recipe.enabled_steps()])
    texts = [d.text for d in documents] * passes
    start = time.process_time()
    for number in range(passes):
        step = minhash_signature(config, str(work / f"sig-{number}"))
        list(step.run(iter(copy.deepcopy(documents))) or [])
    signature = time.process_time() - start
    tokenizer = Tokenizer("gpt2")
    tokenizer.encode("warm up")
    start = time.process_time()
    tokens = sum(len(tokenizer.encode(text)) for text in texts)
    encode = time.process_time() - start
    return {"documents": len(documents), "characters_per_document": round(sum(map(len, texts)) / max(1, len(texts))),
            "gpt2_tokens_per_document": round(tokens / max(1, len(texts))),
            "minhash_docs_per_second": round(len(texts) / signature, 1),
            "tokenize_docs_per_second": round(len(texts) / encode, 1)}


def run_variant(name, variant, where: Path, args, reference_chain, repeat: int):
    work = args.work / f"{name}-{repeat}-{where.name}"
    if variant is None:
        steps, names = datatrove_chain(where, args.language, reference_chain), None
    else:
        steps, names = our_chain(where, args.language, work, *variant)
    wall = time.perf_counter()
    kept, cpu = run(steps)
    return kept, cpu, steps, names, time.perf_counter() - wall


def summarize(results: dict, mix: dict, args) -> dict:
    pages = mix["files"] * mix["records_per_file"]
    reference = set(results["datatrove"]["kept"])
    full = set(results["gate_off"]["kept"])
    summary = {"mix": mix, "pages": pages, "language": args.language, "repeats": args.repeats, "variants": {}}
    base = min(results["datatrove"]["cpu"])
    base_per_page = (base - min(results["datatrove"]["fixed"])) / pages
    for name, result in results.items():
        kept = set(result["kept"])
        best, fixed = min(result["cpu"]), min(result["fixed"])
        per_page = (best - fixed) / pages
        cc_file = fixed + PAGES_PER_CC_FILE * per_page
        cc_base = min(results["datatrove"]["fixed"]) + PAGES_PER_CC_FILE * base_per_page
        summary["variants"][name] = {
            "cpu_seconds": [round(c, 2) for c in result["cpu"]], "pages_per_cpu_second": round(pages / best, 1),
            "pages_per_cpu_second_range": [round(pages / max(result["cpu"]), 1), round(pages / best, 1)],
            "speedup_vs_datatrove": round(base / best, 2), "fixed_cpu_seconds": round(fixed, 2),
            "per_page_ms": round(1000 * per_page, 2),
            "cc_file_pages_per_cpu_second": round(PAGES_PER_CC_FILE / cc_file, 1),
            "cc_file_speedup_vs_datatrove": round(cc_base / cc_file, 2), "kept": len(kept),
            "kept_of_datatrove": len(kept & reference), "extra_vs_datatrove": len(kept - reference),
            "kept_of_full_chain": len(kept & full), "steps": result.get("steps")}
    return summary


def print_mix(summary: dict) -> None:
    mix = summary["mix"]
    print(f"mix: {mix['files']} WARC files x {mix['records_per_file']} records "
          f"({mix['zh_web_chinese_per_file']} Chinese pages of zh-web-A in each), {mix['bytes'] / 1e6:.1f} MB; "
          f"keeping {summary['language']}, best of {summary['repeats']}")
    print(f"{'chain':18} {'CPU s (each repeat)':22} {'pages/CPU-s':>11} {'x datatrove':>11} {'fixed s':>7} "
          f"{'ms/page':>7} {'CC file p/s':>11} {'x datatrove':>11} {'kept':>5} {'of datatrove':>12} "
          f"{'of full chain':>13}")
    for name, row in summary["variants"].items():
        print(f"{name:18} {str(row['cpu_seconds']):22} {row['pages_per_cpu_second']:>11} "
              f"{row['speedup_vs_datatrove']:>11} {row['fixed_cpu_seconds']:>7} {row['per_page_ms']:>7} "
              f"{row['cc_file_pages_per_cpu_second']:>11} {row['cc_file_speedup_vs_datatrove']:>11} "
              f"{row['kept']:>5} {row['kept_of_datatrove']:>12} {row['kept_of_full_chain']:>13}")
    later = summary["later_stages"]
    print(f"after cleaning, on the {later['documents']} documents the gate's chain keeps: MinHash signatures "
          f"{later['minhash_docs_per_second']} docs/s/core, GPT-2 tokenization {later['tokenize_docs_per_second']} "
          f"docs/s/core ({later['characters_per_document']} characters, {later['gpt2_tokens_per_document']} tokens "
          f"per document)")
    for name in ("gate_off", "gate", "gate_resiliparse"):
        print(f"  {name} per step (pages in, pages/s/core):")
        for step in summary["variants"][name]["steps"] or []:
            print(f"    {step['step']:18} {step['pages']:6} {step['pages_per_second_per_core']}")


__all__ = ["build_mix", "bench_mix", "print_mix"]
