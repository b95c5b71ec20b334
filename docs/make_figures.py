"""Draw every figure of the learner's guide (docs/guide.md, docs/guide.zh.md) into docs/figures/*.png.

    python docs/make_figures.py                                  # all figures from docs/figures/data/ (seconds)
    python docs/make_figures.py --run-dir runs/demo --resumed-run-dir runs/demo-resumed --out runs/figures
    python docs/make_figures.py --train 200 --update-data        # rerun the guide's demo itself (~10 min, 2 CPUs)
    python docs/make_figures.py --cleaning-report data/cc/cleaning/report.json --update-data

Figures are computed, never drawn by hand. Three are pure formulas evaluated with the project's own code and
settings (MinHash S-curve from pipeline.dedup.DedupConfig, ZeRO bytes per rank from the ZeRO paper with the
parameter count of model.gpt's GPT-2, the learning-rate schedules of model.optim.learning_rate on the configs in
configs/). The others plot measurements. Those are kept as small files in docs/figures/data/ so the figures can be
redrawn anywhere; pass the folders of a new measurement to draw from it instead (and --update-data to keep it):

    demo-run.json            loss curves and next-token probabilities of the guide's demo run (--run-dir / --train)
    cleaning-news-200.json   the cleaning report of `pipeline.prepare --corpus commoncrawl` on a 200-page news crawl
                             (--cleaning-report OUTPUT/cleaning/report.json)
    measured.json            numbers measured by bench/bench_dedup.py and bench/bench_train.py --part memory
    tokenizer.json           compression of GPT-2 BPE and of trained tokenizers on held-out text
                             (python bench/bench_tokenizer.py --update-data)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))  # `python docs/make_figures.py` from anywhere imports this checkout

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DATA = DOCS / "figures" / "data"
PROMPT = "The history of the"  # the next-token figure's prompt (the same as the guide's logits example)
TEMPERATURES = (0.5, 1.0, 2.0)
COLORS = {"params": "#4C72B0", "grads": "#DD8452", "optimizer": "#55A868"}


def save(fig, out: Path, name: str) -> Path:
    """PNG at 100 dpi with a reduced palette: each figure stays well under 200 KB (they are committed)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight", pil_kwargs={"optimize": True})
    plt.close(fig)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------------- measurements
def read_metrics(run_dir: Path) -> tuple[list, list]:
    """(train [(step, loss)], val [(step, val_loss)]) from a run folder's metrics.jsonl."""
    train, val = [], []
    with open(Path(run_dir) / "metrics.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if "loss" in record:
                train.append([record["step"], record["loss"]])
            if "val_loss" in record:
                val.append([record["step"], record["val_loss"]])
    return train, val


def next_token_table(run_dir: Path, top: int = 12) -> dict:
    """The demo model's next-token probabilities after PROMPT at each temperature (the top tokens at T=1)."""
    import torch

    from model.checkpoint.weights import load_model
    from pipeline.tokenizer import get_tokenizer

    enc, model = get_tokenizer("gpt2").encoding, load_model(run_dir)
    idx = torch.tensor([enc.encode_ordinary(PROMPT)])
    with torch.no_grad():
        logits, _ = model(idx)
    last = logits[0, -1, :model.config.vocab_size].double()
    order = torch.softmax(last, -1).topk(top).indices.tolist()
    return {"prompt": PROMPT, "tokens": [enc.decode([i]) for i in order],
            "probabilities": {str(t): torch.softmax(last / t, -1)[order].tolist() for t in TEMPERATURES}}


def run_demo(steps: int, work: Path) -> tuple[Path, Path]:
    """The guide's demo in `work`: prepare the sample corpus, train `steps` steps, resume from the halfway
    checkpoint into a second run folder. Returns (run folder, resumed run folder)."""
    env = {**os.environ, "DS_ACCELERATOR": os.environ.get("DS_ACCELERATOR", "cpu"),
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    data, run, resumed = work / "data" / "sample", work / "runs" / "demo", work / "runs" / "demo-resumed"
    train = [sys.executable, "-m", "model.train", "--config", str(REPO / "configs" / "tiny-cpu.yaml"),
             "--data", str(data), "--max-steps", str(steps)]
    if not (data / "manifest.json").is_file():  # (a folder prepared earlier is reused)
        subprocess.run([sys.executable, "-m", "pipeline.prepare", "--corpus", "sample", "--output", str(data),
                        "--shard-tokens", "500000"], check=True, env=env, cwd=work)
    subprocess.run(train + ["--run-dir", str(run), "--set", f"checkpoint.every={steps // 2}"], check=True, env=env,
                   cwd=work)
    halfway = sorted((run / "checkpoints").glob("step_[0-9]*"))[0]
    subprocess.run(train + ["--run-dir", str(resumed), "--resume", str(halfway)], check=True, env=env, cwd=work)
    return run, resumed


def demo_data(args) -> dict:
    if not args.run_dir:
        return json.loads((DATA / "demo-run.json").read_text())
    train, val = read_metrics(args.run_dir)
    data = {"source": f"metrics.jsonl of {Path(args.run_dir).name} (configs/tiny-cpu.yaml on the sample corpus)",
            "train": train, "val": val, "next_token": next_token_table(Path(args.run_dir))}
    if args.resumed_run_dir:
        data["resumed"] = read_metrics(args.resumed_run_dir)[0]
    return data


def cleaning_data(args) -> dict:
    path = Path(args.cleaning_report) if args.cleaning_report else DATA / "cleaning-news-200.json"
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------------- figures
def figure_loss(demo: dict, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(*zip(*demo["train"]), linewidth=1, color="#4C72B0", label="train loss (uninterrupted run)")
    if demo.get("resumed"):
        ax.plot(*zip(*demo["resumed"]), "x", markersize=3, color="#C44E52",
                label=f"resumed from step {demo['resumed'][0][0] - 1}: the same losses")
    if demo["val"]:
        ax.plot(*zip(*demo["val"]), "o-", color="#55A868", label="validation loss")
    ax.axhline(10.83, color="gray", linestyle=":", linewidth=1)
    ax.text(demo["train"][-1][0], 10.83, "ln(50257) = 10.83: uniform guessing", ha="right", va="bottom", fontsize=8,
            color="gray")
    ax.set_xlabel("optimizer step (2,048 tokens each)")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title("Demo run: tiny GPT (3.3M parameters) on the sample corpus, 2 CPU cores")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, out, "demo_loss.png")


def figure_next_token(demo: dict, out: Path) -> Path:
    table = demo["next_token"]
    tokens = [repr(t)[1:-1] for t in table["tokens"]]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(table["probabilities"])
    for i, (temperature, probs) in enumerate(table["probabilities"].items()):
        ax.bar([x + (i - 1) * width for x in range(len(tokens))], probs, width, label=f"temperature {temperature}")
    ax.set_xticks(range(len(tokens)), [f"'{t}'" for t in tokens], rotation=45, ha="right", fontsize=8)
    ax.set_yscale("log")  # at T = 2 every probability is tiny: a linear axis would hide them
    ax.set_ylabel("probability (log scale)")
    ax.set_title(f"Next token after \"{table['prompt']}\": softmax(logits[:, -1, :] / T), demo model")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, out, "next_token.png")


def figure_minhash(out: Path) -> Path:
    import numpy as np

    from pipeline.dedup import DedupConfig

    config = DedupConfig()  # FineWeb's settings, the project's defaults
    b, r = config.num_buckets, config.hashes_per_bucket
    s = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(s, 1 - (1 - s ** r) ** b, color="#4C72B0", linewidth=2, label=f"{b} buckets x {r} hashes: 1 - (1 - s^{r})^{b}")
    for other_b, other_r in ((28, 4), (7, 16)):
        ax.plot(s, 1 - (1 - s ** other_r) ** other_b, linestyle="--", linewidth=1,
                label=f"{other_b} x {other_r} (same 112 hashes, other split)")
    bands = json.loads((DATA / "measured.json").read_text())["dedup_recall"]["bands"]
    ax.plot([(lo + hi) / 2 for lo, hi, _ in bands], [recall for _, _, recall in bands], "o", color="#C44E52",
            label="measured recall (bench/bench_dedup.py)")
    threshold = (1 / b) ** (1 / r)
    ax.axvline(threshold, color="gray", linestyle=":", linewidth=1)
    ax.text(threshold, 0.03, f" (1/{b})^(1/{r}) = {threshold:.2f}", fontsize=8, color="gray")
    ax.set_xlabel("Jaccard similarity s of two documents' word 5-gram sets")
    ax.set_ylabel("P(the pair becomes a candidate)")
    ax.set_title("MinHash LSH banding: the S-curve of FineWeb's settings")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return save(fig, out, "minhash_scurve.png")


def figure_cleaning(report: dict, out: Path) -> Path:
    steps = report["steps"]
    names = ["read"] + [f"{i + 1:02d} {step['step']}" for i, step in enumerate(steps)]
    kept = [steps[0]["docs_in"]] + [step["docs_out"] for step in steps]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.barh(range(len(names)), kept, color="#4C72B0")
    for y, (count, step) in enumerate(zip(kept, [None] + steps)):
        label = f"{count}"
        if step:
            lost = sum(step["dropped"].values()) + sum(step["failed"].values())
            if lost:
                reasons = {**step["dropped"], **step["failed"]}
                top = max(reasons, key=reasons.get)
                label += f"  (-{lost}; top reason {top}: {reasons[top]})"
        ax.text(count + 2, y, label, va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(kept) * 1.75)
    ax.set_xlabel("documents left after the step")
    documents = report["documents"]
    ax.set_title(f"Recipe {report.get('recipe', '')} on {documents['read']} web pages: {documents['kept']} kept, "
                 f"{documents['dropped']} dropped, {documents['failed']} failed", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, out, "cleaning_funnel.png")


def zero_bytes_per_rank(psi: float, n: int, k: int = 12) -> dict[int, dict[str, float]]:
    """Bytes of model state per rank (ZeRO paper, section 5): fp16/bf16 parameters 2 psi, gradients 2 psi,
    optimizer K psi (fp32 master copy, Adam m and v: K = 12); stage 1 shards the optimizer state, stage 2 also
    the gradients, stage 3 also the parameters, each over the n data-parallel ranks."""
    return {0: {"params": 2 * psi, "grads": 2 * psi, "optimizer": k * psi},
            1: {"params": 2 * psi, "grads": 2 * psi, "optimizer": k * psi / n},
            2: {"params": 2 * psi, "grads": 2 * psi / n, "optimizer": k * psi / n},
            3: {"params": 2 * psi / n, "grads": 2 * psi / n, "optimizer": k * psi / n}}


def gpt_parameters(name: str) -> int:
    import torch

    from model.gpt import GPT, GPTConfig

    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = GPT(GPTConfig.from_name(name))
    return sum(p.numel() for p in model.parameters())


def stacked_bars(ax, columns: list[dict[str, float]], positions: list[float], scale: float, width: float = 0.8,
                 hatch: str | None = None, labels: bool = True) -> None:
    """One stacked bar (params, grads, optimizer) per column, its total written on top."""
    bottoms = [0.0] * len(columns)
    for kind in ("params", "grads", "optimizer"):
        values = [column[kind] / scale for column in columns]
        ax.bar(positions, values, width, bottom=bottoms, color=COLORS[kind], hatch=hatch, edgecolor="white",
               label=kind if labels else None)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    for x, total in zip(positions, bottoms):
        ax.text(x, total, f"{total:,.1f}" if total < 100 else f"{total:,.0f}", ha="center", va="bottom", fontsize=7)


def figure_zero(out: Path) -> Path:
    measured = json.loads((DATA / "measured.json").read_text())["zero_memory"]
    n = measured["world_size"]
    psi_xl, psi_small = gpt_parameters("gpt2-xl"), gpt_parameters("gpt2")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 4))
    formula = zero_bytes_per_rank(psi_xl, 8)
    stacked_bars(left, list(formula.values()), list(range(4)), 1e9)
    left.set_xticks(range(4), [f"stage {s}" for s in formula])
    left.set_title(f"ZeRO formula, (2 + 2 + 12) bytes per parameter:\nGPT-2 XL ({psi_xl / 1e9:.2f}B), 8 ranks", fontsize=10)
    left.set_ylabel("GB of model state per rank")
    left.legend(fontsize=8)
    stages = sorted(measured["megabytes"], key=int)
    stacked_bars(right, [{k: v * 1e6 for k, v in measured["megabytes"][s].items()} for s in stages],
                 [i - 0.2 for i in range(len(stages))], 1e6, width=0.38, labels=False)
    stacked_bars(right, [zero_bytes_per_rank(psi_small, n)[int(s)] for s in stages],
                 [i + 0.2 for i in range(len(stages))], 1e6, width=0.38, hatch="//", labels=False)
    right.set_xticks(range(len(stages)), [f"stage {s}" for s in stages])
    right.set_title(f"GPT-2 124M, bf16, {n} ranks:\nmeasured (plain) vs formula (hatched)", fontsize=10)
    right.set_ylabel("MB per rank")
    for ax in (left, right):
        ax.grid(axis="y", alpha=0.3)
    return save(fig, out, "zero_memory.png")


def figure_lr(out: Path) -> Path:
    from model.config import load_config
    from model.optim import learning_rate

    fig, ax = plt.subplots(figsize=(7, 3.4))
    for overrides, label in (([], "cosine (configs/gpt2-124m.yaml)"),
                             (["optim.schedule=wsd"], "wsd: warmup-stable-decay (--set optim.schedule=wsd)")):
        config = load_config(REPO / "configs" / "gpt2-124m.yaml", overrides)
        steps = range(0, config.train.max_steps + 1, 50)
        ax.plot(list(steps), [learning_rate(step, config) for step in steps], label=label)
    ax.set_xlabel("optimizer step (0.5M tokens each)")
    ax.set_ylabel("learning rate")
    ax.set_title("model.optim.learning_rate: linear warmup (715 steps), then the schedule")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, out, "lr_schedule.png")


def figure_tokenizer(out: Path) -> Path:
    """Bytes per token on held-out English web text and characters per token on held-out Chinese web text: GPT-2
    BPE against the tokenizers bench/bench_tokenizer.py trained (higher = more text per token)."""
    data = json.loads((DATA / "tokenizer.json").read_text())
    rows = data["compression"]
    names = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    panels = (("English web", "bytes_per_token", "English web pages: bytes per token"),
              ("Chinese web", "chars_per_token", "Chinese web pages: characters per token"))
    for ax, (text, metric, title) in zip(axes, panels):
        values = [rows[name][text][metric] for name in names]
        bars = ax.bar(range(len(names)), values, color=["#999999"] + ["#4C72B0"] * (len(names) - 1))
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("higher = fewer tokens for the same text", fontsize=8)
    fig.suptitle(f"Held-out text: GPT-2 BPE vs byte-level BPE trained on {data['training_text']['chars'] / 1e6:.1f} M "
                 "characters of Chinese + English", fontsize=10)
    return save(fig, out, "tokenizer_compression.png")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python docs/make_figures.py", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DOCS / "figures",
                        help="folder to write the PNGs to (default: docs/figures, the guide's)")
    parser.add_argument("--run-dir", type=Path,
                        help="a training run folder (metrics.jsonl, checkpoints/) to draw the loss curve and the "
                             "next-token probabilities from (default: the numbers in docs/figures/data/demo-run.json)")
    parser.add_argument("--resumed-run-dir", type=Path,
                        help="with --run-dir: a run resumed from one of its checkpoints, drawn on top of it")
    parser.add_argument("--train", type=int, metavar="STEPS",
                        help="run the guide's demo first (prepare the sample corpus, train STEPS steps, resume from "
                             "the halfway checkpoint) in --work, and draw from it; 200 steps take ~10 min on 2 busy CPUs")
    parser.add_argument("--work", type=Path, help="with --train: folder for its data/ and runs/ (default: a temp folder)")
    parser.add_argument("--cleaning-report", type=Path,
                        help="report.json of a cleaning run (OUTPUT/cleaning/report.json of `pipeline.prepare "
                             "--corpus commoncrawl`) to draw the drop chart from (default: the news-200 report in "
                             "docs/figures/data/)")
    parser.add_argument("--update-data", action="store_true",
                        help="save the numbers read from --run-dir/--train/--cleaning-report into docs/figures/data/ "
                             "so that the default run draws them from now on")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.train:
        work = args.work or Path(tempfile.mkdtemp(prefix="guide-demo-"))
        work.mkdir(parents=True, exist_ok=True)
        args.run_dir, args.resumed_run_dir = run_demo(args.train, work.absolute())
    demo, report = demo_data(args), cleaning_data(args)
    if args.update_data:
        if args.run_dir:
            (DATA / "demo-run.json").write_text(json.dumps(demo, ensure_ascii=False) + "\n")
        if args.cleaning_report:
            (DATA / "cleaning-news-200.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    for path in (figure_loss(demo, args.out), figure_next_token(demo, args.out), figure_minhash(args.out),
                 figure_cleaning(report, args.out), figure_zero(args.out), figure_lr(args.out),
                 figure_tokenizer(args.out)):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
