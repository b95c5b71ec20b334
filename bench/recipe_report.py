"""The tables and the figure of bench/bench_recipe.py, from its results (the runs and their val_bpb curves)."""
from __future__ import annotations

import math
import statistics
from pathlib import Path


def final(run: dict) -> float:
    last = run["curve"][-1]
    return float("nan") if last.get("diverged") else last["val_bpb"]


def mean_curve(runs: list[dict]) -> list[tuple[float, float]]:
    """(FLOPs, val_bpb) averaged over the seeds at each evaluation all of them reached."""
    points = [[(p["flops"], p["val_bpb"]) for p in run["curve"] if not p.get("diverged")] for run in runs]
    length = min(len(p) for p in points)
    return [(statistics.mean(p[i][0] for p in points), statistics.mean(p[i][1] for p in points))
            for i in range(length)]


def crossing(curve: list[tuple[float, float]], target: float) -> tuple[float | None, bool]:
    """The FLOPs where the curve first reaches `target`, linear between evaluations (None if it never does), and
    whether that is only a bound: a curve already below target at its first evaluation gives that evaluation."""
    previous = None
    for flops, bpb in curve:
        if bpb <= target:
            if previous is None:
                return flops, True
            f0, b0 = previous
            return f0 + (b0 - target) / (b0 - bpb) * (flops - f0), False
        previous = (flops, bpb)
    return None, False


def compute_ratio(gpt2: list[dict], modern: list[dict]) -> dict:
    """The modern recipe's FLOPs to reach the GPT-2 recipe's final val_bpb, over the GPT-2 recipe's FLOPs: on the
    seed means, and seed by seed (seed s of each)."""
    target = statistics.mean(final(r) for r in gpt2)
    budget = statistics.mean(r["curve"][-1]["flops"] for r in gpt2)
    reached, bound = crossing(mean_curve(modern), target)
    per_seed = []
    for a in gpt2:
        b = next((r for r in modern if r["seed"] == a["seed"]), None)
        if b is not None:
            at, seed_bound = crossing(mean_curve([b]), final(a))
            per_seed.append((None if at is None else at / a["curve"][-1]["flops"], seed_bound))
    return {"target_bpb": target, "gpt2_flops": budget, "modern_flops": reached, "bound": bound,
            "ratio": None if reached is None else reached / budget, "per_seed": per_seed}


def spread(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if len(values) < 2:
        return "n/a (1 seed)"
    return f"{min(values):.4f}-{max(values):.4f} ({max(values) - min(values):.4f})"


def ratio_text(value: float | None, bound: bool = False) -> str:
    return "not reached" if value is None else f"{'<= ' if bound else ''}{value:.2f}x"


def by_row(runs: list[dict], lang: str) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for run in runs:
        if run["lang"] == lang:
            rows.setdefault(run["row"], []).append(run)
    return rows


def ablation_table(rows: dict[str, list[dict]], names: list[str], changes_of: dict[str, str],
                   cumulative: bool) -> list[str]:
    base = rows["GPT-2 recipe"]
    base_bpb = statistics.mean(final(r) for r in base)
    base_ms = statistics.median(r["step_cpu_s"] for r in base)
    base_flops = base[0]["flops_per_token"]
    lines = ["| row | val_bpb (mean) | seeds: min-max (range) | vs GPT-2 recipe | "
             f"{'vs row above | ' if cumulative else ''}CPU ms/step | vs GPT-2 | FLOPs/token vs GPT-2 | model |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if cumulative else "")]
    above = None
    for name in names:
        runs = rows[name]
        bpb = statistics.mean(final(r) for r in runs)
        ms = statistics.median(r["step_cpu_s"] for r in runs)
        versus_above = "" if not cumulative else "| " if above is None else f"{bpb - above:+.4f} | "
        lines.append(f"| {changes_of.get(name, name)} | {bpb:.4f} | {spread([final(r) for r in runs])} | "
                     f"{bpb - base_bpb:+.4f} | {versus_above}{1000 * ms:.0f} | {ms / base_ms:.2f}x | "
                     f"{runs[0]['flops_per_token'] / base_flops:.3f}x | {runs[0]['model']} |")
        above = bpb
    return lines


def report(results: dict, figure: Path | None) -> str:
    s, runs = results["settings"], results["runs"]
    langs = list(dict.fromkeys(r["lang"] for r in runs))
    tokens = s["batch"] * s["seq_len"]
    out = ["# Recipe benchmark: GPT-2 recipe against the modern recipe", "",
           f"`python bench/bench_recipe.py{' --quick' if s['quick'] else ''}`: {s['n_layer']} layers, {s['n_head']} "
           f"heads, width {s['n_embd']}; {s['steps']} steps of {tokens:,} tokens ({s['batch']} x {s['seq_len']}), "
           f"AdamW lr {s['lr']:g} (with Muon: {s['muon_adamw_lr']:g} for the parameters AdamW keeps), Muon lr "
           f"{s['muon_lr']:g}, cosine to a tenth after {s['warmup']} warm-up steps; "
           f"{s['seeds']} seeds per configuration (train.seed = 1, 2, ...: the initial weights; every run reads the "
           f"same data order, so the rows compare on the same batches); val_bpb on the first "
           f"{s['val_batches'] * s['batch']} windows of each val split (the recipes' curves at {s['evals']} evenly "
           f"spaced steps and 4 early ones, the ablation rows' at 4); "
           f"{s['threads']} thread(s), torch {s['torch']}; {s['seconds'] / 60:.1f} minutes in all, "
           f"{s['cpu_seconds'] / 60:.1f} CPU-minutes.", "",
           "## Compute to reach the GPT-2 recipe's final val_bpb", "",
           "| language | GPT-2 recipe val_bpb | seeds | modern recipe val_bpb | seeds | modern FLOPs to reach GPT-2's "
           "final | compute ratio | per seed | target <= 0.7x |", "|---|---|---|---|---|---|---|---|---|"]
    ratios = {}
    for lang in langs:
        rows = by_row(runs, lang)
        gpt2, modern = rows["GPT-2 recipe"], rows["modern recipe"]
        r = ratios[lang] = compute_ratio(gpt2, modern)
        met = r["ratio"] is not None and r["ratio"] <= 0.7
        reached = "-" if r["modern_flops"] is None else f"{r['modern_flops']:.3g}"
        out.append(f"| {lang} | {r['target_bpb']:.4f} | {spread([final(x) for x in gpt2])} | "
                   f"{statistics.mean(final(x) for x in modern):.4f} | {spread([final(x) for x in modern])} | "
                   f"{reached} of {r['gpt2_flops']:.3g} | {ratio_text(r['ratio'], r['bound'])} | "
                   f"{', '.join(ratio_text(*v) for v in r['per_seed'])} | {'yes' if met else 'no'} |")
    labels = {f"alone: {label}": label for _, label in results["changes"]}
    for lang in langs:
        rows = by_row(runs, lang)
        if not any(name.startswith("alone: ") for name in rows):
            continue
        cumulative = ["GPT-2 recipe", "alone: " + results["changes"][0][1]]
        cumulative += [f"+ {label}" for _, label in results["changes"][1:-1]] + ["modern recipe"]
        names_cumulative = {"GPT-2 recipe": "GPT-2 recipe (GPT-2, AdamW, stream)",
                            cumulative[1]: f"+ {results['changes'][0][1]}",
                            "modern recipe": f"+ {results['changes'][-1][1]} (= the modern recipe)"}
        out += ["", f"## Ablation ({lang}): the changes added one by one", ""]
        out += ablation_table(rows, cumulative, names_cumulative, cumulative=True)
        out += ["", f"## Ablation ({lang}): each change alone, on the GPT-2 recipe", ""]
        out += ablation_table(rows, ["GPT-2 recipe"] + list(labels), labels, cumulative=False)
        plan = next((r["packing_plan"] for r in runs if r["lang"] == lang and "aligned" in r["changes"]
                     and r["packing_plan"]), None)
        if plan:
            out += ["", f"Aligned batches ({lang}), the trainer's plan line: `{plan}`"]
    out += ["", "val_bpb is measured on held-out text (each folder's val split). The compute ratio reads the modern "
                "recipe's curve at evaluations taken before its learning rate has decayed, so it is an upper bound on "
                "the compute that recipe needs (\"<=\": reached by the first evaluation already). \"vs row above\" is "
                "the effect of the row's change given the rows above it; compare it with the seeds' range. "
                "CPU ms/step: "
                "the median step's CPU time on one thread (the work, whatever else the machine runs)."]
    if figure is not None:
        draw(runs, langs, ratios, figure)
        out += ["", f"Figure: {figure.name} (val_bpb against training FLOPs, each seed a line)."]
    return "\n".join(out) + "\n"


def draw(runs: list[dict], langs: list[str], ratios: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(langs), figsize=(6 * len(langs), 4.2), dpi=100, squeeze=False)
    for ax, lang in zip(axes[0], langs):
        rows = by_row(runs, lang)
        for name, color in (("GPT-2 recipe", "tab:blue"), ("modern recipe", "tab:orange")):
            for i, run in enumerate(rows[name]):
                points = [(p["flops"], p["val_bpb"]) for p in run["curve"] if not p.get("diverged")]
                ax.plot(*zip(*points), "o-", color=color, alpha=0.8, markersize=3, linewidth=1,
                        label=name if i == 0 else None)
        r = ratios[lang]
        ax.axhline(r["target_bpb"], color="gray", linestyle="--", linewidth=0.8,
                   label="GPT-2 recipe's final val_bpb")
        if r["modern_flops"] is not None:
            ax.axvline(r["modern_flops"], color="tab:orange", linestyle=":", linewidth=0.8)
        ax.set_title(f"{lang}: modern recipe needs {ratio_text(r['ratio'], r['bound'])} the compute")
        ax.set_xlabel("training FLOPs")
        ax.set_ylabel("validation bits per byte")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
