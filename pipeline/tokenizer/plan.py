"""The tokenizer side of `pipeline.prepare`: `--tokenizer NAME|PATH|train`, and what the shard folder keeps of it.

    --tokenizer gpt2                         tiktoken's GPT-2 BPE (default, offline)
    --tokenizer tokenizers/zh-en-32k         a folder made by `python -m pipeline.tokenizer train` (verified first)
    --tokenizer train --vocab-size 32768     train one on this run's documents, after they are cleaned,
                                             deduplicated and shuffled, before they are tokenized

A trained tokenizer is written to OUTPUT/.prepare-work/tokenizer/<name> and kept there until the commit, so a
resumed run does not train it again (it is retrained only when the shuffled documents changed: its metadata names
the shuffle stage's fingerprint). A tokenizer folder, trained or given, is copied into the shard folder as
`tokenizer/`, and the manifest records its name, source, vocab_size, eot_token and sha256.
"""
import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from gptstack.errors import InputError
from pipeline.runner.stages import StageReader
from pipeline.tokenizer.folder import is_tokenizer_folder, load_tokenizer_folder
from pipeline.tokenizer.tokenizer import COPY_DIR, Tokenizer, get_tokenizer, looks_like_path
from pipeline.tokenizer.train import DEFAULT_MAX_CHARS, DEFAULT_PATTERN, PATTERNS, TrainSettings, train_tokenizer

TRAIN = "train"


def add_tokenizer_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tokenizer (see docs/tokenizer.md)")
    group.add_argument("--tokenizer", default="gpt2",
                       help="gpt2 (default, offline), another tiktoken name (downloads), the path of a tokenizer "
                            "folder (`python -m pipeline.tokenizer train`), or `train`: train a byte-level BPE on "
                            "this run's cleaned, deduplicated, shuffled documents (needs --vocab-size); ids must "
                            "fit uint16")
    group.add_argument("--vocab-size", type=int, default=None,
                       help="with --tokenizer train: ids in all, 8 special tokens included (at most 65,536)")
    group.add_argument("--tokenizer-max-chars", type=int, default=DEFAULT_MAX_CHARS,
                       help=f"with --tokenizer train: train on a seeded sample of at most this many characters "
                            f"(default: {DEFAULT_MAX_CHARS:,})")
    group.add_argument("--tokenizer-pattern", default=DEFAULT_PATTERN, choices=list(PATTERNS),
                       help=f"with --tokenizer train: the split pattern (default: {DEFAULT_PATTERN})")


@dataclass
class TokenizerPlan:
    spec: str  # the stage fingerprint's `tokenizer`: a name or a folder path
    label: str  # the manifest's `tokenizer` (a name), also what an existing output folder is compared with
    settings: TrainSettings | None = None  # set when this run trains the tokenizer
    tokenizer: Tokenizer | None = None  # resolved now when given, after training when trained (`train_on_shuffled`)

    @property
    def trains(self) -> bool:
        return self.settings is not None


def plan_tokenizer(args: argparse.Namespace, output: Path, work: Path) -> TokenizerPlan:
    """Check the tokenizer options (one-line InputError, nothing written) and say what this run will use."""
    if args.tokenizer != TRAIN:
        if args.vocab_size is not None:
            raise InputError("--vocab-size applies only to --tokenizer train (a given tokenizer has its own)")
        if looks_like_path(args.tokenizer):
            tokenizer = get_tokenizer(str(Path(args.tokenizer).absolute()))  # verifies the folder
            return TokenizerPlan(tokenizer.spec, tokenizer.name, tokenizer=tokenizer)
        # a name's encoding is loaded when first used, after the output folder is checked (prepare)
        return TokenizerPlan(args.tokenizer, args.tokenizer, tokenizer=Tokenizer(args.tokenizer))
    if args.vocab_size is None:
        raise InputError("--tokenizer train needs --vocab-size N (e.g. 32768; at most 65,536)")
    if getattr(args, "executor", "local") == "slurm":
        raise InputError("--tokenizer train runs between the shuffle and tokenize stages in this process, which "
                         "--executor slurm does not wait for: train with --executor local or ray, or train first "
                         "(`python -m pipeline.tokenizer train`) and give --tokenizer PATH")
    settings = TrainSettings(args.vocab_size, args.tokenizer_pattern, args.tokenizer_max_chars, args.seed)
    settings.check()
    name = f"{output.name}-bpe{args.vocab_size}"
    return TokenizerPlan(str(work / "tokenizer" / name), name, settings)


def shuffled_texts(shuffled_folder: Path, tasks: int):
    """The shuffle stage's output, task after task: the corpus in its final order."""
    for rank in range(tasks):
        for document in StageReader(shuffled_folder).run(None, rank=rank, world_size=tasks):
            yield document.text


def train_on_shuffled(plan: TokenizerPlan, work: Path, tasks: int) -> Tokenizer:
    """Train the plan's tokenizer on the shuffled documents, unless a finished one trained on the same shuffle
    output is already there (a resumed run); the plan then holds the resolved tokenizer."""
    record = json.loads((work / "stages" / "shuffle-sort.json").read_text())
    source = ("pipeline.prepare: cleaned, deduplicated, shuffled documents "
              f"(shuffle fingerprint {record['fingerprint']})")
    folder = Path(plan.spec)
    if is_tokenizer_folder(folder):
        try:
            meta = load_tokenizer_folder(folder).meta
        except InputError:  # damaged: train again
            meta = {"training": {}}
        if meta["training"].get("source") == source and meta.get("vocab_size") == plan.settings.vocab_size:
            print(f"tokenizer: reusing {folder} (trained on the same documents)", flush=True)
            plan.tokenizer = get_tokenizer(plan.spec)
            return plan.tokenizer
    shutil.rmtree(folder, ignore_errors=True)
    print(f"tokenizer: training a {plan.settings.vocab_size:,}-id BPE on the shuffled documents", flush=True)
    train_tokenizer(shuffled_texts(work / "shuffle" / "documents", tasks), plan.settings, folder, source)
    plan.tokenizer = get_tokenizer(plan.spec)
    return plan.tokenizer


def tokenizer_fingerprint(plan: TokenizerPlan) -> dict:
    """What the tokenize stage's fingerprint must include besides the spec: a folder's sha256 (its content)."""
    return {"tokenizer_sha256": plan.tokenizer.sha256} if plan.tokenizer.folder else {}


def manifest_tokenizer(plan: TokenizerPlan, source: str) -> tuple[dict, dict]:
    """(vocab_size and eot_token for build_manifest, the extra manifest fields of a tokenizer folder)."""
    tokenizer = plan.tokenizer
    extra = {}
    if plan.trains:
        source = "trained on this folder's documents (pipeline.prepare --tokenizer train)"
    if tokenizer.folder:
        extra = {"tokenizer_source": source, "tokenizer_sha256": tokenizer.sha256, "tokenizer_files": COPY_DIR}
    return {"vocab_size": tokenizer.vocab_size, "eot_token": tokenizer.eot_token}, extra


def tokenizer_companion(plan: TokenizerPlan, work: Path) -> Path | None:
    """The folder to commit as OUTPUT/tokenizer/ (None for a tiktoken name: an old copy is then removed)."""
    if plan.tokenizer.folder is None:
        return None
    if plan.trains:
        return plan.tokenizer.path  # already inside the work folder: moved, not copied
    return plan.tokenizer.copy_into(work, "tokenizer-copy")
