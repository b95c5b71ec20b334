"""FineWeb-2's rehydration: repeat each document as many times as the size of its duplicate cluster says.

Deduplication keeps one document of each MinHash cluster and records the cluster's size in `minhash_cluster_size`
(FineWeb-2's files carry it; our DedupFilter writes it too). FineWeb-2 found that putting some of the removed copies
back helps, most for high-resource languages, and published these weights (huggingface/fineweb-2, README.md,
"Deduplication"; the same text is on the HuggingFaceFW/fineweb-2 dataset card):

    cluster size   1   2   3   4   5..99   100..999   1000+
    copies         1   2   3   3     5         8        1      (very large clusters: assumed low quality)

Its example code looks the size up with bisect in {1: 1, 2: 2, 3: 3, 5: 5, 100: 8, 1000: 1}; `copies` is that
lookup. The copies get ids `<id>#rehydrated-<k>`, so the seeded shuffle spreads them over the corpus rather than
leaving them side by side. `rehydration_summary` adds up what every task counted: documents and tokens before and
after (tokens of the run's tokenizer, or GPT-2's when the run trains its own, which does not exist yet here).
"""
import bisect
import json
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from gptstack.files import open_for_write

WEIGHTS = {1: 1, 2: 2, 3: 3, 5: 5, 100: 8, 1000: 1}  # smallest cluster size of a bracket -> copies (FineWeb-2)
_LIMITS = sorted(WEIGHTS)
CLUSTER_SIZE = "minhash_cluster_size"


def copies(cluster_size: int) -> int:
    """How many times a document of a cluster of `cluster_size` documents appears after rehydration."""
    return WEIGHTS[_LIMITS[max(bisect.bisect_right(_LIMITS, cluster_size) - 1, 0)]]


class Rehydrate(PipelineStep):
    """Yield each document `copies(minhash_cluster_size)` times (1 when it has no cluster size); write this task's
    counts to `<summary_folder>/<rank>.json`."""

    name = "💧 Rehydrate"
    type = "🫂 - DEDUP"

    def __init__(self, summary_folder: str, tokenizer, counted_with: str):
        super().__init__()
        self.summary_folder, self.tokenizer, self.counted_with = str(summary_folder), tokenizer, counted_with

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts = {"documents_before": 0, "documents_after": 0, "tokens_before": 0, "tokens_after": 0,
                  "without_cluster_size": 0}
        for document in data:
            size = document.metadata.get(CLUSTER_SIZE)
            if size is None:
                counts["without_cluster_size"] += 1
            n = copies(int(size)) if size is not None else 1
            tokens = len(self.tokenizer.encode(document.text))
            counts["documents_before"] += 1
            counts["documents_after"] += n
            counts["tokens_before"] += tokens
            counts["tokens_after"] += tokens * n
            self.stat_update("rehydrated_copies", value=n - 1)
            yield document
            for k in range(1, n):
                copy = document.__class__(text=document.text, id=f"{document.id}#rehydrated-{k}",
                                          metadata=dict(document.metadata))
                yield copy
        path = Path(self.summary_folder) / f"{rank:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_for_write(path, "w", encoding="utf-8") as f:
            json.dump({**counts, "counted_with": self.counted_with}, f)


def rehydration_summary(summary_folder: Path) -> dict:
    """Every task's counts added up, with the ratio of tokens after to before (the manifest's `rehydration`)."""
    total = {"documents_before": 0, "documents_after": 0, "tokens_before": 0, "tokens_after": 0,
             "without_cluster_size": 0}
    counted_with = None
    for path in sorted(Path(summary_folder).glob("*.json")):
        counts = json.loads(path.read_text(encoding="utf-8"))
        counted_with = counts.pop("counted_with")
        for key in total:
            total[key] += counts[key]
    ratio = total["tokens_after"] / total["tokens_before"] if total["tokens_before"] else 1.0
    return {"weights": {str(k): v for k, v in WEIGHTS.items()}, **total, "token_ratio": round(ratio, 4),
            "counted_with": counted_with}


def describe(summary: dict) -> str:
    """One line for the console: what rehydration did to the corpus."""
    line = (f"rehydration (FineWeb-2's weights): {summary['documents_before']:,} -> {summary['documents_after']:,} "
            f"documents, {summary['tokens_before']:,} -> {summary['tokens_after']:,} tokens "
            f"(x{summary['token_ratio']:.2f}, counted with {summary['counted_with']})")
    if summary["without_cluster_size"]:
        line += f"; {summary['without_cluster_size']:,} documents had no {CLUSTER_SIZE} and were kept once"
    return line


REHYDRATE_STAGE = "rehydrate"


def plan_rehydration(flag: bool, recipe_says: bool, corpus: str, dedup_runs: bool, work: Path, tokenizer,
                     counted_with: str):
    """The Rehydrate step of a run, or None when neither --rehydrate nor the recipe's `dedup.rehydrate` asks for
    it. InputError when no document can have a cluster size: a Hub corpus without one and no dedup in the run."""
    from gptstack.errors import InputError

    if not (flag or recipe_says):
        return None
    if not dedup_runs and corpus not in ("fineweb-2", "local"):
        raise InputError(f"--rehydrate repeats documents by their {CLUSTER_SIZE}, which --corpus {corpus} does "
                         "not have: use it with --corpus fineweb-2, with files that carry it (--corpus local), or "
                         "with dedup on (e.g. --recipe fineweb2)")
    return Rehydrate(str(work / REHYDRATE_STAGE / "summary"), tokenizer, counted_with)


def rehydrate_stage(step: Rehydrate, documents: Path, work: Path, tasks: int):
    """The stage that reads the cleaned, deduplicated documents and writes them rehydrated (before the shuffle)."""
    from pipeline.runner.stages import Stage, StageReader, stage_writer

    output = work / REHYDRATE_STAGE / "documents"
    stage = Stage(REHYDRATE_STAGE, [StageReader(documents), step, stage_writer(output)], tasks,
                  [output, Path(step.summary_folder)], {"weights": WEIGHTS, "counted_with": step.counted_with})
    return stage, output
