"""How well does dedup find near duplicates, how fast is each stage, and how much memory does clustering need?

Real documents: the 499 Common Crawl pages of ../shared/data/text/dclm_majority_data.jsonl and the ~10,000
Wikipedia lead sections of the sample corpus. Into them we plant near duplicates: a copy of a document (of at least
100 words) with random words replaced until the Jaccard similarity of the two documents' word 5-gram sets (the very
shingles MinHash estimates) falls in a chosen band. One copy per document, after all originals. Then the four dedup
stages of `pipeline.prepare` run with the product's configuration (FineWeb's: 5-grams, 14 buckets x 8 hashes).

Reported: recall per similarity band (planted copies removed, and removed in favour of their original); the
false-positive rate (original documents removed: none of them is a copy of another); the theoretical detection
probability 1 - (1 - s^8)^14 at the band's middle; seconds per stage. Then the cluster stage's peak memory
(tracemalloc) for the corpus, for the corpus halved (same duplicates) and for twice the duplicates, next to
datatrove's own MinhashDedupCluster on the same near-duplicate pairs.

    python bench/bench_dedup.py [--per-band 100] [--tasks 2] [--workers 1]
    python bench/bench_dedup.py --quick      # smallest setting: does it run? (tests)
"""
import argparse
import gzip
import json
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.dedup.minhash import MinhashDedupCluster, MinhashDedupSignature  # noqa: E402

from pipeline.read.corpora import sample_corpus_path  # noqa: E402
from pipeline.dedup import DedupConfig, dedup_stages, read_summary  # noqa: E402
from pipeline.dedup.steps import DedupClusters  # noqa: E402
from pipeline.runner.executors import make_executor  # noqa: E402
from pipeline.runner.stages import run_stages, stage_writer  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
BANDS = [(0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0)]
# --quick: a hundred web pages and two copies per band, to check that the script still runs; its figures mean nothing.
QUICK = {"per_band": 2, "documents": 100}


def real_documents(limit: int | None = None) -> tuple[list[str], int]:
    """The first `limit` (default: all) real documents, web pages first, and how many of them are web pages."""
    with open(SHARED / "text" / "dclm_majority_data.jsonl") as f:
        web = [json.loads(line)["text"] for line in f]
    wiki = [entry["extract"] for entry in json.loads(sample_corpus_path().read_text()).values()]
    documents = (web + wiki)[:limit]
    return documents, min(len(web), len(documents))


class Shingler:
    """The word 5-gram hashes MinHash signs (datatrove's own get_shingles, FineWeb's configuration)."""

    def __init__(self, config: DedupConfig):
        from pipeline.dedup import word_tokenizer

        self.step = MinhashDedupSignature(tempfile.mkdtemp(), config=config.minhash_config(),
                                          language=word_tokenizer(config.language))

    def __call__(self, text: str) -> set[int]:
        return set(self.step.get_shingles(text).ravel().tolist())


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


def plant(text: str, band: tuple[float, float], shingles: Shingler, rng: random.Random) -> tuple[str, float] | None:
    """A copy of `text` with words replaced so that its Jaccard similarity to `text` lies in `band` (or None)."""
    words = text.split(" ")
    order = rng.sample(range(len(words)), len(words))
    original = shingles(text)
    target = rng.uniform(*band)

    def edited(k: int) -> str:
        copy = list(words)
        for position in order[:k]:
            copy[position] = f"zq{rng.randrange(10**9)}"
        return " ".join(copy)

    low, high = 0, len(words)  # similarity falls as k grows: find the k that reaches the target
    while low < high:
        middle = (low + high) // 2
        if jaccard(original, shingles(edited(middle))) > target:
            low = middle + 1
        else:
            high = middle
    for k in (low, low - 1, low + 1):
        if 0 < k <= len(words):
            copy = edited(k)
            similarity = jaccard(original, shingles(copy))
            if band[0] <= similarity < band[1] or (band[1] == 1.0 and band[0] <= similarity < 1.0):
                return copy, similarity
    return None


def build_corpus(originals: list[str], bases: list[int], copies_per_base: int, shingles: Shingler, seed: int):
    """Documents (originals first, then the planted copies) and, per copy, (copy id, base id, band, similarity)."""
    rng = random.Random(seed)
    documents = [Document(text=text, id=f"orig-{i}") for i, text in enumerate(originals)]
    planted = []
    for number, base in enumerate(bases):
        for copy_number in range(copies_per_base):
            band = BANDS[(number + copy_number) % len(BANDS)]
            made = plant(originals[base], band, shingles, rng)
            if made:
                copy_id = f"copy-{base}-{copy_number}"
                documents.append(Document(text=made[0], id=copy_id))
                planted.append((copy_id, f"orig-{base}", band, made[1]))
    return documents, planted


def write_stage_files(documents: list[Document], folder: Path, tasks: int) -> None:
    def source(data, rank, world_size):
        yield from documents[rank * len(documents) // world_size:(rank + 1) * len(documents) // world_size]

    make_executor([source, stage_writer(folder)], tasks, 1,
                  str(folder.parent / "logs" / "write"), False).run()


def run_dedup(documents: list[Document], work: Path, tasks: int, workers: int) -> dict:
    write_stage_files(documents, work / "documents", tasks)
    stages = dedup_stages(DedupConfig(), work / "documents", work / "dedup", tasks)

    def run_stage(stage, logging_dir, resume):
        start = time.perf_counter()
        stats = make_executor(stage.steps, stage.tasks, workers, logging_dir, resume).run()
        return stats, time.perf_counter() - start

    runs = run_stages(stages, work, run_stage)
    removed = {}
    for path in sorted((work / "dedup" / "removed").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                record = json.loads(line)
                removed[record["id"]] = record["metadata"]
    return {"seconds": {name: run.seconds for name, run in runs.items()}, "removed": removed,
            "summary": read_summary(work / "dedup" / "clusters")}


def cluster_peak(work: Path, tasks: int) -> tuple[float, float, float, float]:
    """Peak traced memory (MiB) and seconds of our cluster step and of datatrove's, over the pairs in `work`."""
    pairs = work / "dedup" / "pairs"
    folders = {reason: str(pairs / reason) for reason in ("exact", "url", "near") if (pairs / reason).is_dir()}
    results = []
    for make in (lambda out: DedupClusters(folders, str(work / "dedup" / "signatures" / "ids"), out, tasks),
                 lambda out: MinhashDedupCluster(str(pairs / "near"), out)):
        out = tempfile.mkdtemp(dir=work)
        step = make(out)
        tracemalloc.start()
        start = time.perf_counter()
        result = step.run(None, 0, 1)
        if result is not None:
            for _ in result:
                pass
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        results += [peak, seconds]
    return tuple(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-band", type=int, default=100, help="planted copies per similarity band")
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--documents", type=int, default=None, help="only the first N real documents (default: all)")
    parser.add_argument("--quick", action="store_true", help="the smallest setting (" +
                        ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()) + "): does it run?")
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)

    originals, web_pages = real_documents(args.documents)
    half = len(originals) // 2
    rng = random.Random(0)
    # Bases come from the first half so that the halved corpus holds every original of a planted copy.
    candidates = [i for i in range(half) if len(originals[i].split()) >= 100]
    bases = rng.sample(candidates, min(len(candidates), args.per_band * len(BANDS)))
    shingles = Shingler(DedupConfig())
    full, planted = build_corpus(originals, bases, 1, shingles, seed=1)
    print(f"corpus: {len(originals):,} real documents ({web_pages} dclm web pages + Wikipedia leads), "
          f"{len(planted)} planted near duplicates")

    root = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    try:
        result = run_dedup(full, root / "full", args.tasks, args.workers)
        removed = result["removed"]
        print(f"\n{'Jaccard band':>14} {'copies':>7} {'recall':>7} {'kept original':>14} {'theory 1-(1-s^8)^14':>20}")
        for band in BANDS:
            in_band = [p for p in planted if p[2] == band]
            found = [p for p in in_band if p[0] in removed]
            right = [p for p in found if removed[p[0]]["duplicate_of"] == p[1]]
            middle = sum(band) / 2
            print(f"{band[0]:.1f}-{band[1]:.1f}".rjust(14) + f" {len(in_band):>7}"
                  f" {len(found) / max(1, len(in_band)):>7.3f} {len(right) / max(1, len(found)):>14.3f}"
                  f" {1 - (1 - middle ** 8) ** 14:>20.3f}")
        high = [p for p in planted if p[3] >= 0.8]
        recall_high = sum(p[0] in removed for p in high) / max(1, len(high))
        false_positives = [i for i in removed if i.startswith("orig-")]
        print(f"\nrecall at Jaccard >= 0.8: {recall_high:.3f} ({len(high)} copies; target >= 0.95)")
        print(f"false positives: {len(false_positives)} of {len(originals):,} original documents removed = "
              f"{len(false_positives) / len(originals):.4%} (target <= 0.5%)")
        print("\nseconds per stage (" + f"{len(full):,} documents, {args.tasks} tasks, {args.workers} workers): "
              + ", ".join(f"{name} {seconds:.1f}" for name, seconds in result["seconds"].items()))

        half_corpus = [d for d in full if not d.id.startswith("orig-") or int(d.id[5:]) < half]
        run_dedup(half_corpus, root / "half", args.tasks, args.workers)
        double, _ = build_corpus(originals, bases, 2, shingles, seed=2)
        run_dedup(double, root / "double", args.tasks, args.workers)
        print(f"\ncluster stage, peak traced memory (MiB) and seconds; ours vs datatrove's MinhashDedupCluster:")
        print(f"{'corpus':>34} {'docs':>7} {'in clusters':>11} {'ours MiB':>9} {'s':>6} {'datatrove MiB':>14} {'s':>6}")
        for name, documents, folder in (("half the originals", half_corpus, "half"),
                                        ("all originals", full, "full"),
                                        ("all originals, 2x duplicates", double, "double")):
            summary = read_summary(root / folder / "dedup" / "clusters")
            ours, ours_s, theirs, theirs_s = cluster_peak(root / folder, args.tasks)
            print(f"{name:>34} {len(documents):>7,} {summary['documents_in_clusters']:>11,} {ours:>9.2f} {ours_s:>6.2f}"
                  f" {theirs:>14.2f} {theirs_s:>6.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\ncommand: python bench/bench_dedup.py --per-band {args.per_band} --tasks {args.tasks} "
          f"--workers {args.workers}" + (f" --documents {args.documents}" if args.documents else ""))


if __name__ == "__main__":
    main()
