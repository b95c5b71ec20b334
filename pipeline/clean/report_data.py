"""The cleaning report's view of the data itself, for a data engineer: what the kept documents look like and where
the kept and the dropped ones come from.

  kept          documents the whole recipe kept: histograms of their length in characters and in tokens
                (`metadata.token_count`, when the recipe counts tokens), how many per language (`metadata.language`)
                and their top domains
  dropped       the top domains of the documents the recipe's steps dropped or failed on (their exclusion folders)
  language_scores  lid.176 scores of every document the language filter judged, in 0.1 bins

Everything is read back from what the run wrote (the kept documents, the exclusion folders, the stats), after it:
nothing here changes a document. `relative_paths` turns the machine's paths of a summary into paths relative to
the output folder, so report.json is right after prepare moves its work folder into place.
"""
import glob
import gzip
import io
import json
import os
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

CHAR_EDGES = (0, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
TOKEN_EDGES = (0, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000)
TOP_DOMAINS = 20


def _documents(folder: str):
    """The records of the jsonl(.gz/.zst) files in `folder`, in file-name order."""
    for path in sorted(glob.glob(os.path.join(folder, "*.jsonl*"))):
        if path.endswith(".zst"):
            import zstandard

            raw = open(path, "rb")
            stream = io.TextIOWrapper(io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw)),
                                      encoding="utf-8")
        else:
            stream = gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")
        with stream:
            for line in stream:
                if line.strip():
                    yield json.loads(line)


def domain(url) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.") or None


def histogram(values: list[int], edges: tuple[int, ...]) -> dict | None:
    """Documents per length bin ([edge, next edge), the last bin open), with the count, mean and median."""
    if not values:
        return None
    counts = [0] * len(edges)
    for value in values:
        counts[max(i for i, edge in enumerate(edges) if value >= edge)] += 1
    ordered = sorted(values)
    bins = [{"from": edge, "to": edges[i + 1] if i + 1 < len(edges) else None, "documents": counts[i]}
            for i, edge in enumerate(edges)]
    return {"documents": len(values), "mean": round(sum(values) / len(values), 1),
            "median": ordered[len(ordered) // 2], "max": ordered[-1], "bins": bins}


def profile(kept_folder: str | None, step_folders: dict[str, str], by_language: dict) -> dict:
    """summary["data"]: the kept documents' lengths, languages and domains; the dropped ones' domains; lid scores."""
    chars, tokens, languages, kept_domains = [], [], Counter(), Counter()
    for record in _documents(kept_folder) if kept_folder and os.path.isdir(kept_folder) else ():
        text, metadata = record.get("text") or "", record.get("metadata") or {}
        chars.append(len(text))
        if isinstance(metadata.get("token_count"), int):
            tokens.append(metadata["token_count"])
        languages[metadata.get("language") or "unknown"] += 1
        if name := domain(metadata.get("url")):
            kept_domains[name] += 1
    dropped, dropped_by_step = Counter(), {}
    for step, folder in step_folders.items():
        for record in _documents(folder) if folder and os.path.isdir(folder) else ():
            if name := domain((record.get("metadata") or {}).get("url")):
                dropped[name] += 1
                dropped_by_step.setdefault(name, Counter())[step] += 1
    scores: Counter = Counter()
    for entry in by_language.values():
        scores.update(entry.get("lid_scores", {}))
    return {
        "kept_documents": len(chars),
        "characters": histogram(chars, CHAR_EDGES),
        "tokens": histogram(tokens, TOKEN_EDGES) if len(tokens) == len(chars) else None,
        "kept_by_language": dict(languages.most_common()),
        "top_domains_kept": [[name, n] for name, n in kept_domains.most_common(TOP_DOMAINS)],
        "top_domains_dropped": [[name, n, dict(dropped_by_step[name].most_common())]
                                for name, n in dropped.most_common(TOP_DOMAINS)],
        "language_scores": {f"{b / 10:.1f}": scores.get(f"{b / 10:.1f}", 0) for b in range(10)} if scores else None,
    }


def _bin_label(row: dict) -> str:
    def short(n):
        return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"
    return f"{short(row['from'])}+" if row["to"] is None else f"{short(row['from'])}–{short(row['to'])}"


def markdown(data: dict) -> list[str]:
    """The report's "Kept data" section."""
    lines = ["## Kept data", "", f"{data['kept_documents']:,} documents kept by the whole recipe.", ""]
    for key, unit in (("characters", "characters"), ("tokens", "tokens")):
        shown = data[key]
        if not shown:
            continue
        lines += [f"### Length in {unit} (mean {shown['mean']:,}, median {shown['median']:,}, max {shown['max']:,})",
                  "", f"| {unit} | documents |", "|---|---:|"]
        lines += [f"| {_bin_label(row)} | {row['documents']:,} |" for row in shown["bins"]] + [""]
    lines += ["### Kept documents per language (after the whole recipe)", "", "| language | documents |", "|---|---:|"]
    lines += [f"| {lang} | {n:,} |" for lang, n in data["kept_by_language"].items()] + [""]
    if data["language_scores"]:
        lines += ["### Language-ID scores (lid.176, every document the language filter judged)", "",
                  "| score | documents |", "|---|---:|"]
        lines += [f"| {score}–{float(score) + 0.1:.1f} | {n:,} |" for score, n in data["language_scores"].items()]
        lines += [""]
    lines += ["### Top domains kept", "", "| domain | documents |", "|---|---:|"]
    lines += [f"| {name} | {n:,} |" for name, n in data["top_domains_kept"]] or ["| (no URLs) | |"]
    lines += ["", "### Top domains dropped", "", "| domain | documents | by step |", "|---|---:|---|"]
    lines += [f"| {name} | {n:,} | {', '.join(f'{s} {c:,}' for s, c in steps.items())} |"
              for name, n, steps in data["top_domains_dropped"]] or ["| (no URLs) | | |"]
    return lines + [""]


def label_bars(axis, bars, values) -> None:
    axis.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=7, padding=2)


def draw(axes, summary: dict) -> None:
    """The data panels of report.png: length histograms, kept per language, lid scores, top domains."""
    data = summary.get("data") or {}
    panels = [("characters", "kept documents: length in characters", "tab:purple"),
              ("tokens", "kept documents: length in tokens", "tab:brown")]
    for axis, (key, title, color) in zip(axes[:2], panels):
        shown = data.get(key)
        if shown:
            values = [row["documents"] for row in shown["bins"]]
            label_bars(axis, axis.bar([_bin_label(row) for row in shown["bins"]], values, color=color), values)
            axis.tick_params(axis="x", rotation=45)
        axis.set_title(title if shown else f"{title} (not counted)")
    kept = list((data.get("kept_by_language") or {}).items())[:12]
    label_bars(axes[2], axes[2].bar([k for k, _ in kept], [n for _, n in kept], color="tab:olive"),
               [n for _, n in kept])
    axes[2].set_title("kept documents per language (after the recipe)")
    scores = data.get("language_scores") or {}
    label_bars(axes[3], axes[3].bar(list(scores), list(scores.values()), color="tab:cyan"), list(scores.values()))
    axes[3].set_title("lid.176 score (documents per 0.1 bin)")
    for axis, key, title, color in ((axes[4], "top_domains_kept", "top domains kept", "tab:green"),
                                    (axes[5], "top_domains_dropped", "top domains dropped", "tab:red")):
        rows = (data.get(key) or [])[:12][::-1]
        label_bars(axis, axis.barh([r[0] for r in rows], [r[1] for r in rows], color=color), [r[1] for r in rows])
        axis.set_title(title)
        axis.tick_params(axis="y", labelsize=7)


def relative_paths(summary: dict, root: Path) -> dict:
    """A copy of the summary whose folders are relative to `root` (the output folder, or the work folder whose
    contents prepare moves into it), and whose inputs are file names, not this machine's paths."""
    def rel(path):
        return os.path.relpath(path, root) if path and os.path.isabs(str(path)) else path

    out = json.loads(json.dumps(summary, default=str))
    if out.get("reader"):
        out["reader"]["skipped_folder"] = rel(out["reader"].get("skipped_folder"))
    for step in out.get("steps", []):
        step["exclusion_folder"] = step.pop("shown_folder", None) or rel(step.get("exclusion_folder"))
    out["inputs"] = shown_inputs(out.get("inputs") or "")
    return out


def shown_inputs(inputs: str) -> str:
    """`--input` as the report shows it: URLs as given, local paths by their last part (the manifest's `source` has
    the command's own)."""
    return ",".join(part if "://" in part or not os.path.isabs(part) else Path(part).name
                    for part in inputs.split(","))
