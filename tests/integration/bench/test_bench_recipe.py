"""bench/bench_recipe.py --quick runs every configuration of the recipe benchmark (both recipes in two languages,
the ablation's rows each alone and added one by one, two seeds each) through the real trainer at a toy size, and
writes its tables, JSON and figure. The figures are a toy's after 4 steps: only their presence and finiteness are
checked, and that the rows are the ones the benchmark promises."""
import json
import math
import os
import re
import subprocess
import sys

from tests.support import REPO_ROOT

CHANGES = ["RoPE", "RMSNorm, no biases", "SwiGLU", "QK-norm", "GQA", "untied head", "Muon", "aligned batches"]


def table(text: str, title: str) -> list[list[str]]:
    """The rows (cells) of the markdown table under the heading that starts with `title`."""
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # after the header
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows if not row.startswith("|---")]


def test_bench_recipe_quick_writes_every_row(tiny_shards, tmp_path):
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "bench/bench_recipe.py", "--quick", "--data", f"en={tiny_shards}",
                             "--data", f"zh={tiny_shards}", "--out", str(tmp_path)], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = (tmp_path / "recipe.md").read_text()
    ratios = table(text, "Compute to reach")
    assert [row[0] for row in ratios] == ["en", "zh"], text
    for row in ratios:
        assert math.isfinite(float(row[1])) and math.isfinite(float(row[3])), row  # final val_bpb of both recipes
        assert re.fullmatch(r"[\d.]+x|not reached", row[6]), row  # the compute ratio, read off the curve
    cumulative = table(text, "Ablation (zh): the changes added one by one")
    assert [row[0] for row in cumulative] == ["GPT-2 recipe (GPT-2, AdamW, stream)"] + [
        f"+ {c}" for c in CHANGES[:-1]] + ["+ aligned batches (= the modern recipe)"], text
    alone = table(text, "Ablation (zh): each change alone")
    assert [row[0] for row in alone] == ["GPT-2 recipe"] + CHANGES, text
    for row in cumulative + alone:
        assert math.isfinite(float(row[1])), row  # val_bpb
        assert re.fullmatch(r"[\d.]+-[\d.]+ \([\d.]+\)", row[2]), row  # two seeds: their range
        assert re.fullmatch(r"\d+", row[-4]) and re.fullmatch(r"[\d.]+x", row[-2]), row  # ms/step, FLOPs ratio
    # the models the rows name: the real classes at the ends, the in-between ones from bench/recipe_model.py
    assert cumulative[0][-1] == "GPT" and cumulative[-1][-1] == "Qwen3" and alone[1][-1] == "MixedGPT"
    results = json.loads((tmp_path / "recipe.json").read_text())
    assert {run["seed"] for run in results["runs"]} == {1, 2}
    assert all(len(run["curve"]) == 2 and all(math.isfinite(p["val_bpb"]) for p in run["curve"])
               for run in results["runs"])  # val_bpb against FLOPs: a curve per run
    assert (tmp_path / "recipe_val_bpb.png").stat().st_size > 10_000
