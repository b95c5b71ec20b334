"""The cleaning report: what each step received, kept, dropped and why, for a person to judge the recipe.

`write_report(plan, pipeline, stats, inputs)` reads the datatrove stats of a finished run of `pipeline` (the
reader(s), the plan's steps, the writer of the kept documents; one stats entry per step, in order) and writes, in
the plan's work folder,
  report.json  the numbers: per step documents/characters/tokens in and out, drops by reason, failures
  report.md    the same as tables, the top drop reasons, the language histogram, examples of dropped and kept text
  report.png   documents and tokens left after each step, top drop reasons, detected languages, and the data
               panels of report_data.py (length histograms, kept per language, lid scores, top domains)
  recipe.yaml  the recipe as run
Paths in report.json and links in report.md are relative (to the output folder, and to report.md), so they hold
where prepare moves the report with the folders it points to (report_data.py).
It checks the accounting (every document read is kept, dropped or failed) and says so in the report.
"""
import glob
import gzip
import json
import os
from pathlib import Path

from datatrove.utils.stats import PipelineStats

from gptstack.files import atomic_write
from pipeline.clean import report_data, report_languages
from pipeline.clean.chain import CleaningPlan, is_html_reader
from pipeline.clean.report_languages import drop_reason, kept_examples, quote, stat_total

FAILURE_PREFIX = "error_"


def _stats_dicts(stats) -> list[dict]:
    """One dict per pipeline step from a PipelineStats, or from a stage's logging folder: there, every task's
    `stats/<rank>.json`, so that the tasks an interrupted run finished (and a resumed run skipped) are counted.
    A list of either: the stages that ran the pipeline one after the other (dedup between the recipe's steps)."""
    if isinstance(stats, list):
        return [entry for part in stats for entry in _stats_dicts(part)]
    if isinstance(stats, (str, os.PathLike)):
        tasks = [PipelineStats.from_json(json.loads(path.read_text()))
                 for path in sorted(Path(stats, "stats").glob("*.json"))]
        stats = sum(tasks, start=PipelineStats())
    return [s.to_dict() for s in stats.stats]


def summarize(plan: CleaningPlan, pipeline: list, stats) -> dict:
    """Per-step numbers from the run's stats: `pipeline` is the reader(s), the plan's steps and the writer of the
    kept documents (one stats entry each, in order); the plan says which entries are the recipe's steps."""
    entries = _stats_dicts(stats)
    if len(entries) != len(pipeline):
        raise ValueError(f"{len(entries)} stats entries for {len(pipeline)} pipeline steps")
    summary = {"reader": None, "steps": [], "languages_detected": {}, "by_language": {}}
    previous_tokens = None
    for step, entry in zip(pipeline, entries):
        counts = entry["stats"]
        if is_html_reader(step):
            skipped = {k.removeprefix("skipped_"): stat_total(counts, k) for k in counts if k.startswith("skipped_")}
            summary["reader"] = {"name": entry["name"], "records": stat_total(counts, "records"),
                                 "documents": stat_total(counts, "documents_passed"), "skipped": skipped,
                                 "chars_out": stat_total(counts, "doc_len"), "skipped_folder": step.exclusion_folder}
            continue
        if step is plan.count_tokens and "doc_len_tokens" in counts:
            previous_tokens = stat_total(counts, "doc_len_tokens")  # the tokens entering the chain
        planned = plan.planned(step)
        if planned is None:
            continue
        reasons = {k.removeprefix("dropped_"): stat_total(counts, k) for k in counts if k.startswith("dropped_")}
        tokens_out = stat_total(counts, "doc_len_tokens") if "doc_len_tokens" in counts else None
        if tokens_out is None and previous_tokens is not None and stat_total(counts, "forwarded") == 0:
            tokens_out = 0
        row = {
            "step": planned.name, "name": entry["name"], "exclusion_folder": planned.exclusion_folder,
            **({"shown_folder": planned.shown_folder} if planned.shown_folder else {}),
            "docs_in": stat_total(counts, "total"), "docs_out": stat_total(counts, "forwarded"),
            "dropped": {r: n for r, n in reasons.items() if not r.startswith(FAILURE_PREFIX)},
            "failed": {r: n for r, n in reasons.items() if r.startswith(FAILURE_PREFIX)},
            "passed_other_language": stat_total(counts, "passed_other_language"),
            "chars_out": stat_total(counts, "doc_len"),
            "tokens_in": previous_tokens, "tokens_out": tokens_out,
            "seconds": round(float(entry.get("time_stats", {}).get("total", 0.0))
                             if isinstance(entry.get("time_stats"), dict) else float(entry.get("time_stats") or 0), 3),
        }
        # a drop the step did not name a reason for (datatrove filters may return plain False)
        unnamed = row["docs_in"] - row["docs_out"] - sum(row["dropped"].values()) - sum(row["failed"].values())
        if unnamed > 0:
            row["dropped"]["unnamed"] = unnamed
        summary["steps"].append(row)
        report_languages.add_step(summary, planned.name, counts)
        for key in counts:
            if key.startswith("language_"):
                lang = key.removeprefix("language_")
                detected = summary["languages_detected"]
                detected[lang] = detected.get(lang, 0) + stat_total(counts, key)
        previous_tokens = tokens_out
    steps = summary["steps"]
    if steps:
        documents_read = steps[0]["docs_in"]
    elif summary["reader"]:
        documents_read = summary["reader"]["documents"]
    else:  # text in, no step: the writer got every document read
        documents_read = stat_total(entries[-1]["stats"], "total")
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


def _pointers(folder: str, report_dir: Path | None, skipped: int) -> str:
    """Where the skipped records' pointers are, as a link relative to the report: prepare writes the report in its
    work folder and then moves it with the rejected/ folder beside it, so an absolute path would point into the
    deleted work folder. Nothing when nothing was skipped (the folder is not even made)."""
    if not skipped:
        return ""
    target = os.path.relpath(folder, report_dir) if report_dir else folder
    return f" (pointers in [{target}/]({target}/))"


def _fmt(value) -> str:
    return "–" if value is None else f"{value:,}"


def write_report(plan: CleaningPlan, pipeline: list, stats, inputs: str = "", root=None) -> dict:
    """Write report.json, report.md, report.png and recipe.yaml into the plan's work folder; returns the summary
    (as report.json holds it: folders relative to `root`).

    stats: the run's PipelineStats, or the logging folder of the stage that ran `pipeline` (see `_stats_dicts`), or
    a list of them when `pipeline` ran as several stages in a row.
    root: the folder the output folder's paths are relative to (default: the report's folder); prepare passes its
    work folder, whose rejected/ and cleaning/ become the output folder's.
    """
    out = Path(plan.work_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(root) if root is not None else out
    summary = summarize(plan, pipeline, stats)
    atomic_write(out / "recipe.yaml", Path(plan.recipe.path).read_text(encoding="utf-8"))
    summary.update(recipe=plan.recipe.name, recipe_path=os.path.relpath(out / "recipe.yaml", root),
                   languages=list(plan.languages) if plan.languages else "all", inputs=inputs)
    kept = getattr(getattr(pipeline[-1], "output_folder", None), "path", None)  # the writer of the kept documents
    summary["data"] = report_data.profile(kept, {s["step"]: s["exclusion_folder"] for s in summary["steps"]},
                                          summary.get("by_language") or {})
    shown = report_data.relative_paths(summary, root)
    atomic_write(out / "report.json", json.dumps(shown, indent=2, ensure_ascii=False))
    _write_chart(out / "report.png", shown)
    atomic_write(out / "report.md", _markdown({**summary, "inputs": shown["inputs"]}, plan.examples_folder,
                                              plan.examples, out, root))
    return shown


def _markdown(summary: dict, examples_folder: str, examples: int, report_dir: Path | None = None,
              root: Path | None = None) -> str:
    docs, reader, steps = summary["documents"], summary["reader"], summary["steps"]
    lines = [f"# Cleaning report: recipe `{summary['recipe']}`", ""]
    lines += [f"- input: `{summary['inputs']}`" if summary["inputs"] else "- input: (see command)",
              f"- recipe `{summary['recipe']}`: [recipe.yaml](recipe.yaml) (as run); languages kept: "
              f"{summary['languages']}",
              "- chart: ![per-step chart](report.png)", ""]
    if reader:
        skipped = sum(reader["skipped"].values())
        lines += [f"**WARC records read: {reader['records']:,}** -> {reader['documents']:,} HTML documents, "
                  f"{skipped:,} records skipped{_pointers(reader['skipped_folder'], report_dir, skipped)}:", ""]
        lines += ["| reader skip reason | records |", "|---|---:|"]
        lines += [f"| {r} | {n:,} |" for r, n in sorted(reader["skipped"].items(), key=lambda kv: -kv[1])] + [""]
    check = "yes" if summary["accounting_ok"] else "**NO - please report this**"
    lines += [f"**Documents: {docs['read']:,} read = {docs['kept']:,} kept + {docs['dropped']:,} dropped + "
              f"{docs['failed']:,} failed** (adds up: {check}). Dropped and failed documents are in "
              f"each step's exclusion folder (below) with `metadata.filter_reason`.", ""]
    lines += ["## Per step", "",
              "| # | step | docs in | docs out | dropped | failed | passed (other language) | tokens in | tokens out "
              "| seconds | dropped documents |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for number, s in enumerate(steps, start=1):
        folder = s["exclusion_folder"]
        target = os.path.relpath(folder, report_dir) if report_dir and os.path.isabs(folder) else folder
        if s.get("shown_folder") and root is not None:  # moved into the output folder under another name
            target = os.path.relpath(Path(root) / s["shown_folder"], report_dir)
        link = f"[{target}/]({target}/)" if os.path.isdir(folder) and any(os.scandir(folder)) else "–"
        lines.append(f"| {number:02d} | {s['step']} | {s['docs_in']:,} | {s['docs_out']:,} | "
                     f"{sum(s['dropped'].values()):,} | {sum(s['failed'].values()):,} | "
                     f"{s['passed_other_language']:,} | {_fmt(s['tokens_in'])} | {_fmt(s['tokens_out'])} | "
                     f"{s['seconds']} | {link} |")
    lines += ["", "Tokens are counted after extraction (HTML has none worth counting).", ""]
    reasons = sorted(((n, s["step"], r) for s in steps for r, n in {**s["dropped"], **s["failed"]}.items()),
                     reverse=True)
    lines += ["## Top drop reasons", "", "| step | reason | documents |", "|---|---|---:|"]
    lines += [f"| {step} | {reason} | {n:,} |" for n, step, reason in reasons[:15]] + [""]
    for s in (s for s in steps if s["step"] == "decontaminate"):  # every task, not only the top reasons
        lines += ["## Contaminated documents per evaluation task (docs/decontamination.md)", "",
                  f"{sum(s['dropped'].values()):,} of {s['docs_in']:,} documents shared an n-gram with an example.", ""]
        lines += ["| task | documents |", "|---|---:|"] + [
            f"| {reason.removeprefix('contaminated_')} | {n:,} |"
            for reason, n in sorted(s["dropped"].items(), key=lambda kv: -kv[1])] + [""] if s["dropped"] else []
    if summary["languages_detected"]:
        lines += ["## Languages detected (fastText lid.176, before the language filter)", "",
                  "| language | documents |", "|---|---:|"]
        lines += [f"| {lang} | {n:,} |" for lang, n in
                  sorted(summary["languages_detected"].items(), key=lambda kv: -kv[1])[:20]] + [""]
    if summary.get("data"):
        lines += report_data.markdown(summary["data"])
    lines += report_languages.markdown(summary, examples_folder,
                                       {s["step"]: s["exclusion_folder"] for s in steps}, examples)
    lines += ["## Examples of kept text", ""]
    for example in kept_examples(examples_folder)[:examples]:
        lines += [f"- `{example.get('url') or example['id']}` ({example.get('language') or '?'})", "",
                  quote(example["text"]), ""]
    lines += ["## Examples of dropped text", ""]
    for s in steps:
        found = _examples(s["exclusion_folder"], examples)
        if not found:
            continue
        lines += [f"### {s['step']}", ""]
        for doc in found:
            meta = doc.get("metadata", {})
            where = meta.get("url") or doc.get("id")
            raw_html = s["step"] in ("language_gate", "trafilatura", "resiliparse")
            text = "" if raw_html else doc.get("text", "")  # raw HTML is not worth quoting
            lines += [f"- reason `{drop_reason(meta)}` - `{where}`"
                      + (f" - {meta['error']}" if meta.get("error") else ""), ""]
            if text:
                lines += [quote(text, 300), ""]
    return "\n".join(lines) + "\n"


def _write_chart(path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = summary["steps"]
    fig, grid = plt.subplots(4, 3, figsize=(18, 20))
    axes = list(grid.flat)
    labels = (["read"] if summary["reader"] is None else ["WARC docs"]) + [s["step"] for s in steps]
    values = [summary["documents"]["read"]] + [s["docs_out"] for s in steps]
    report_data.label_bars(axes[0], axes[0].bar(range(len(values)), values, color="tab:blue"), values)
    axes[0].set_xticks(range(len(values)), labels, rotation=45, ha="right")
    axes[0].set_title("documents left after each step")
    counted = [s for s in steps if s["tokens_out"] is not None]
    tokens = [s["tokens_out"] for s in counted]
    report_data.label_bars(axes[1], axes[1].bar(range(len(tokens)), tokens, color="tab:orange"), tokens)
    axes[1].set_xticks(range(len(tokens)), [s["step"] for s in counted], rotation=45, ha="right")
    axes[1].set_title("tokens left after each step")
    reasons = sorted(((n, f"{s['step']}: {r}") for s in steps for r, n in {**s["dropped"], **s["failed"]}.items()),
                     reverse=True)[:12]
    report_data.label_bars(axes[2], axes[2].barh([r for _, r in reasons][::-1], [n for n, _ in reasons][::-1],
                                                 color="tab:red"), [n for n, _ in reasons][::-1])
    axes[2].set_title("top drop reasons (documents)")
    axes[2].tick_params(axis="y", labelsize=7)
    languages = sorted(summary["languages_detected"].items(), key=lambda kv: -kv[1])[:12]
    report_data.label_bars(axes[3], axes[3].bar([lang for lang, _ in languages], [n for _, n in languages],
                                                color="tab:green"), [n for _, n in languages])
    axes[3].set_title("languages detected (before the language filter)")
    report_data.draw(axes[4:10], summary)
    for axis in axes[10:]:
        axis.axis("off")
    fig.suptitle(f"cleaning recipe {summary['recipe']}: {summary['documents']['kept']:,} of "
                 f"{summary['documents']['read']:,} documents kept")
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # (room for the title)
    try:
        atomic_write(path, lambda temp: fig.savefig(temp, format="png", dpi=80))
    finally:
        plt.close(fig)
