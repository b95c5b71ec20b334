"""The cleaning report per language: for each language the language filter saw, its documents and tokens in and out
of every step from the language filter on, its drop reasons, its lid.176 score histogram, and kept and dropped
examples in that language.

The numbers come from the stats every guarded step keeps per language (`by_language/<lang>/...`, see
pipeline/clean/steps.py `count_by_language`) and the language filter's `lid_score/<lang>/<bin>` histogram.
"""
import glob
import gzip
import json
import os
from pathlib import Path

BY_LANGUAGE = "by_language/"
LID_SCORE = "lid_score/"


def stat_total(stats: dict, key: str) -> int:
    """A datatrove stats entry's count (a plain number, or a metric's {"total": ...})."""
    value = stats.get(key, 0)
    return int(value["total"] if isinstance(value, dict) else value)


def add_step(summary: dict, step: str, counts: dict) -> None:
    """Fold one step's per-language stats into summary["by_language"]."""
    languages = summary.setdefault("by_language", {})
    rows: dict[str, dict] = {}
    for key in counts:
        if key.startswith(LID_SCORE):
            language, bin_ = key.removeprefix(LID_SCORE).split("/")
            scores = languages.setdefault(language, {"steps": [], "kept": 0, "lid_scores": {}})["lid_scores"]
            scores[f"{int(bin_) / 10:.1f}"] = scores.get(f"{int(bin_) / 10:.1f}", 0) + stat_total(counts, key)
        if not key.startswith(BY_LANGUAGE):
            continue
        language, _, what = key.removeprefix(BY_LANGUAGE).partition("/")
        row = rows.setdefault(language, {"step": step, "docs_in": 0, "docs_out": 0, "tokens_in": 0,
                                         "tokens_out": 0, "dropped": {}})
        if what.startswith("dropped/"):
            row["dropped"][what.removeprefix("dropped/")] = stat_total(counts, key)
        else:
            row[what] = stat_total(counts, key)
    for language, row in rows.items():
        entry = languages.setdefault(language, {"steps": [], "kept": 0, "lid_scores": {}})
        entry["steps"].append(row)
        entry["kept"] = row["docs_out"]  # the last step that saw the language: what is left of it


def markdown(summary: dict, examples_folder: str, step_folders: dict[str, str], examples: int) -> list[str]:
    """The report's "Per language" section (nothing when no step counted languages)."""
    languages = summary.get("by_language") or {}
    if not languages:
        return []
    lines = ["## Per language", ""]
    ordered = sorted(languages.items(), key=lambda kv: (-kv[1]["kept"], -sum(kv[1]["lid_scores"].values())))
    lines += ["| language | detected | kept | lid.176 scores (documents per 0.1 bin, 0.0 .. 0.9) |", "|---|---:|---:|---|"]
    for language, entry in ordered:
        histogram = " ".join(str(entry["lid_scores"].get(f"{b / 10:.1f}", 0)) for b in range(10))
        lines.append(f"| {language} | {sum(entry['lid_scores'].values()):,} | {entry['kept']:,} | {histogram} |")
    lines.append("")
    saved_examples = kept_examples(examples_folder)
    for language, entry in ordered:
        if not entry["steps"]:
            continue
        lines += [f"### {language}", "", "| step | docs in | docs out | tokens in | tokens out | drop reasons |",
                  "|---|---:|---:|---:|---:|---|"]
        for row in entry["steps"]:
            reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(row["dropped"].items(), key=lambda kv: -kv[1]))
            lines.append(f"| {row['step']} | {row['docs_in']:,} | {row['docs_out']:,} | {row['tokens_in']:,} | "
                         f"{row['tokens_out']:,} | {reasons or '–'} |")
        lines.append("")
        kept = [e for e in saved_examples if e.get("language") == language][:examples]
        for example in kept:
            lines += [f"- kept: `{example.get('url') or example['id']}`", "", quote(example["text"]), ""]
        for row in entry["steps"]:
            for doc in _dropped(step_folders.get(row["step"]), language, 1):
                meta = doc.get("metadata", {})
                lines += [f"- dropped by {row['step']} (`{drop_reason(meta)}`): "
                          f"`{meta.get('url') or doc.get('id')}`", "", quote(doc.get("text", ""), 300), ""]
    return lines


def kept_examples(folder: str) -> list[dict]:
    """The documents KeptExamples saved in `folder` (<rank>.jsonl), in task order."""
    found = []
    for path in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
        found += [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return found


def _dropped(folder: str | None, language: str, limit: int) -> list[dict]:
    found = []
    for path in sorted(glob.glob(os.path.join(folder or "", "*.jsonl.gz"))) if folder else []:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                if doc.get("metadata", {}).get("language") == language:
                    found.append(doc)
                    if len(found) >= limit:
                        return found
    return found


def drop_reason(metadata: dict) -> str:
    """Why a step dropped a document: a filter's `filter_reason`, or dedup's `dedup_reason`."""
    return metadata.get("filter_reason") or metadata.get("dedup_reason", "?")


def quote(text: str, limit: int = 400) -> str:
    """`text` on one line as a Markdown quote, cut at `limit` characters."""
    text = " ".join(text.split())
    return "> " + (text[:limit] + (" …" if len(text) > limit else "")) if text else "> (no text)"
