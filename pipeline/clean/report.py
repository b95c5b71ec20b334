"""The cleaning report: what each step received, kept, dropped and why, for a person to judge the recipe.

`write_report(out_dir, pipeline, stats, ...)` reads the datatrove stats of a finished run (one entry per step of
`pipeline`, in order; `LocalPipelineExecutor.run()` returns them and saves them as logs/stats.json) and writes
  report.json  the numbers: per step documents/characters/tokens in and out, drops by reason, failures
  report.md    the same as tables, the top drop reasons, the language histogram, examples of dropped and kept text
  report.png   documents left after each step, top drop reasons, detected languages
It checks the accounting (every document read is kept, dropped or failed) and says so in the report.
"""
import glob
import gzip
import json
import os
from pathlib import Path

from pipeline.clean.steps import KeptExamples

FAILURE_PREFIX = "error_"


def _total(stats: dict, key: str) -> int:
    value = stats.get(key, 0)
    return int(value["total"] if isinstance(value, dict) else value)


def _stats_dicts(stats) -> list[dict]:
    if hasattr(stats, "stats"):  # datatrove PipelineStats
        return [s.to_dict() for s in stats.stats]
    if isinstance(stats, (str, os.PathLike)):
        return json.loads(Path(stats).read_text())
    return list(stats)


def summarize(pipeline: list, stats) -> dict:
    """Per-step numbers from the run's stats; `pipeline` tells which entry is the reader and which the recipe's."""
    entries = _stats_dicts(stats)
    if len(entries) != len(pipeline):
        raise ValueError(f"{len(entries)} stats entries for {len(pipeline)} pipeline steps")
    summary = {"reader": None, "steps": [], "languages_detected": {}}
    previous_tokens = None
    for step, entry in zip(pipeline, entries):
        counts = entry["stats"]
        if getattr(step, "produces_html", False):
            skipped = {k.removeprefix("skipped_"): _total(counts, k) for k in counts if k.startswith("skipped_")}
            summary["reader"] = {"name": entry["name"], "records": _total(counts, "records"),
                                 "documents": _total(counts, "documents_passed"), "skipped": skipped,
                                 "chars_out": _total(counts, "doc_len"),
                                 "skipped_folder": getattr(step, "exclusion_folder", None)}
            continue
        if getattr(step, "recipe_step", None) is None:
            if "doc_len_tokens" in counts and not isinstance(step, KeptExamples):
                previous_tokens = _total(counts, "doc_len_tokens")  # CountTokens: the tokens entering the chain
            continue
        reasons = {k.removeprefix("dropped_"): _total(counts, k) for k in counts if k.startswith("dropped_")}
        tokens_out = _total(counts, "doc_len_tokens") if "doc_len_tokens" in counts else None
        if tokens_out is None and previous_tokens is not None and _total(counts, "forwarded") == 0:
            tokens_out = 0
        row = {
            "step": step.recipe_step, "name": entry["name"], "exclusion_folder": step.exclusion_folder,
            "docs_in": _total(counts, "total"), "docs_out": _total(counts, "forwarded"),
            "dropped": {r: n for r, n in reasons.items() if not r.startswith(FAILURE_PREFIX)},
            "failed": {r: n for r, n in reasons.items() if r.startswith(FAILURE_PREFIX)},
            "passed_other_language": _total(counts, "passed_other_language"),
            "chars_out": _total(counts, "doc_len"),
            "tokens_in": previous_tokens, "tokens_out": tokens_out,
            "seconds": round(float(entry.get("time_stats", {}).get("total", 0.0))
                             if isinstance(entry.get("time_stats"), dict) else float(entry.get("time_stats") or 0), 3),
        }
        # a drop the step did not name a reason for (datatrove filters may return plain False)
        unnamed = row["docs_in"] - row["docs_out"] - sum(row["dropped"].values()) - sum(row["failed"].values())
        if unnamed > 0:
            row["dropped"]["unnamed"] = unnamed
        summary["steps"].append(row)
        for key in counts:
            if key.startswith("language_"):
                lang = key.removeprefix("language_")
                summary["languages_detected"][lang] = summary["languages_detected"].get(lang, 0) + _total(counts, key)
        previous_tokens = tokens_out
    steps = summary["steps"]
    documents_read = steps[0]["docs_in"] if steps else (summary["reader"] or {}).get("documents", 0)
    dropped = sum(sum(s["dropped"].values()) for s in steps)
    failed = sum(sum(s["failed"].values()) for s in steps)
    kept = steps[-1]["docs_out"] if steps else documents_read
    summary["documents"] = {"read": documents_read, "kept": kept, "dropped": dropped, "failed": failed}
    chain_ok = all(a["docs_out"] == b["docs_in"] for a, b in zip(steps, steps[1:]))
    reader_ok = summary["reader"] is None or summary["reader"]["documents"] == documents_read
    summary["accounting_ok"] = bool(chain_ok and reader_ok and kept + dropped + failed == documents_read)
    return summary


def _examples(folder: str, limit: int) -> list[dict]:
    found = []
    for path in sorted(glob.glob(os.path.join(folder, "*.jsonl.gz"))):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                found.append(json.loads(line))
                if len(found) >= limit:
                    return found
    return found


def _kept_examples(work_dir: str, limit: int) -> list[dict]:
    found = []
    for path in sorted(glob.glob(os.path.join(work_dir, "kept_examples", "*.jsonl"))):
        found += [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return found[:limit]


def _quote(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return "> " + (text[:limit] + (" …" if len(text) > limit else "")) if text else "> (no text)"


def _fmt(value) -> str:
    return "–" if value is None else f"{value:,}"


def write_report(out_dir: str, pipeline: list, stats, recipe=None, languages=None, inputs: str = "",
                 examples: int = 3) -> dict:
    """Write report.json, report.md and report.png into out_dir (the cleaning work dir); returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(pipeline, stats)
    summary.update(recipe=getattr(recipe, "name", None), recipe_path=getattr(recipe, "path", None),
                   languages=list(languages) if languages else "all", inputs=inputs)
    _atomic_write(out / "report.json", json.dumps(summary, indent=2, ensure_ascii=False))
    _write_chart(out / "report.png", summary)
    _atomic_write(out / "report.md", _markdown(summary, str(out), examples))
    return summary


def _atomic_write(path: Path, text: str) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def _markdown(summary: dict, work_dir: str, examples: int) -> str:
    docs, reader, steps = summary["documents"], summary["reader"], summary["steps"]
    lines = [f"# Cleaning report: recipe `{summary['recipe']}`", ""]
    lines += [f"- input: `{summary['inputs']}`" if summary["inputs"] else "- input: (see command)",
              f"- recipe file: `{summary['recipe_path']}`; languages kept: {summary['languages']}",
              f"- chart: ![per-step chart](report.png)", ""]
    if reader:
        skipped = sum(reader["skipped"].values())
        lines += [f"**WARC records read: {reader['records']:,}** -> {reader['documents']:,} HTML documents, "
                  f"{skipped:,} records skipped (pointers in `{reader['skipped_folder']}`):", ""]
        lines += ["| reader skip reason | records |", "|---|---:|"]
        lines += [f"| {r} | {n:,} |" for r, n in sorted(reader["skipped"].items(), key=lambda kv: -kv[1])] + [""]
    check = "yes" if summary["accounting_ok"] else "**NO - please report this**"
    lines += [f"**Documents: {docs['read']:,} read = {docs['kept']:,} kept + {docs['dropped']:,} dropped + "
              f"{docs['failed']:,} failed** (adds up: {check}). Dropped and failed documents are in "
              f"`excluded/NN_step/` with `metadata.filter_reason`.", ""]
    lines += ["## Per step", "",
              "| # | step | docs in | docs out | dropped | failed | passed (other language) | tokens in | tokens out "
              "| seconds |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for number, s in enumerate(steps, start=1):
        lines.append(f"| {number:02d} | {s['step']} | {s['docs_in']:,} | {s['docs_out']:,} | "
                     f"{sum(s['dropped'].values()):,} | {sum(s['failed'].values()):,} | "
                     f"{s['passed_other_language']:,} | {_fmt(s['tokens_in'])} | {_fmt(s['tokens_out'])} | "
                     f"{s['seconds']} |")
    lines += ["", "Tokens are counted after extraction (HTML has none worth counting).", ""]
    reasons = sorted(((n, s["step"], r) for s in steps for r, n in {**s["dropped"], **s["failed"]}.items()),
                     reverse=True)
    lines += ["## Top drop reasons", "", "| step | reason | documents |", "|---|---|---:|"]
    lines += [f"| {step} | {reason} | {n:,} |" for n, step, reason in reasons[:15]] + [""]
    if summary["languages_detected"]:
        lines += ["## Languages detected (fastText lid.176, before the language filter)", "",
                  "| language | documents |", "|---|---:|"]
        lines += [f"| {lang} | {n:,} |" for lang, n in
                  sorted(summary["languages_detected"].items(), key=lambda kv: -kv[1])[:20]] + [""]
    lines += ["## Examples of kept text", ""]
    for example in _kept_examples(work_dir, examples):
        lines += [f"- `{example.get('url') or example['id']}` ({example.get('language') or '?'})", "",
                  _quote(example["text"]), ""]
    lines += ["## Examples of dropped text", ""]
    for s in steps:
        found = _examples(s["exclusion_folder"], examples)
        if not found:
            continue
        lines += [f"### {s['step']}", ""]
        for doc in found:
            meta = doc.get("metadata", {})
            where = meta.get("url") or doc.get("id")
            text = "" if s["step"] == "trafilatura" else doc.get("text", "")  # raw HTML is not worth quoting
            lines += [f"- reason `{meta.get('filter_reason', '?')}` - `{where}`"
                      + (f" - {meta['error']}" if meta.get("error") else ""), ""]
            if text:
                lines += [_quote(text, 300), ""]
    return "\n".join(lines) + "\n"


def _write_chart(path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = summary["steps"]
    fig, axes = plt.subplots(1, 3, figsize=(18, 5))
    labels = (["read"] if summary["reader"] is None else ["WARC docs"]) + [s["step"] for s in steps]
    values = [summary["documents"]["read"]] + [s["docs_out"] for s in steps]
    axes[0].bar(range(len(values)), values, color="tab:blue")
    axes[0].set_xticks(range(len(values)), labels, rotation=45, ha="right")
    axes[0].set_title("documents left after each step")
    reasons = sorted(((n, f"{s['step']}: {r}") for s in steps for r, n in {**s["dropped"], **s["failed"]}.items()),
                     reverse=True)[:12]
    axes[1].barh([r for _, r in reasons][::-1], [n for n, _ in reasons][::-1], color="tab:red")
    axes[1].set_title("top drop reasons (documents)")
    languages = sorted(summary["languages_detected"].items(), key=lambda kv: -kv[1])[:12]
    axes[2].bar([lang for lang, _ in languages], [n for _, n in languages], color="tab:green")
    axes[2].set_title("languages detected")
    fig.suptitle(f"cleaning recipe {summary['recipe']}: {summary['documents']['kept']:,} of "
                 f"{summary['documents']['read']:,} documents kept")
    fig.tight_layout()
    temp = path.with_name(path.name + ".tmp.png")
    fig.savefig(temp, dpi=80)
    plt.close(fig)
    os.replace(temp, path)
