"""The command line of `python -m pipeline.prepare`: its options, their defaults and their checks.

Kept apart from pipeline/prepare.py so that the orchestration there reads as its five steps.
"""
import argparse

from gptstack.cli_args import ArgumentParser, add_force_argument
from gptstack.errors import InputError
from pipeline.clean import add_cli_arguments
from pipeline.dedup import add_dedup_arguments
from pipeline.read.corpora import CORPORA
from pipeline.runner.executors import MAX_DEFAULT_TASKS, add_executor_arguments
from pipeline.tokenizer.plan import add_tokenizer_arguments
from pipeline.tokens.pack import VAL_MAX_FRACTION
from pipeline.tokens.shuffle import add_shuffle_arguments

WORK_FOLDER = ".prepare-work"  # inside the output folder: everything is written here first, then committed


def parse_args(argv=None) -> argparse.Namespace:
    corpora = "\n".join(f"  {name:12} {corpus.description}" for name, corpus in CORPORA.items())
    parser = ArgumentParser(
        prog="python -m pipeline.prepare",
        description="Tokenize a corpus into uint16 shards (llm.c format) plus manifest.json.",
        epilog=f"corpora:\n{corpora}\n\nexamples:\n"
               "  python -m pipeline.prepare                              # the offline sample corpus\n"
               "  python -m pipeline.prepare --corpus fineweb-edu --subset sample-10BT --workers 16\n"
               "  python -m pipeline.prepare --corpus fineweb-2 --subset cmn_Hani --rehydrate --tokenizer tok/zh\n"
               "  python -m pipeline.prepare --corpus fineweb-2 --subset cmn_Hani --val-subset cmn_Hani/test\n"
               "  python -m pipeline.prepare --input 'my_data/*.jsonl.gz' --output data/mine\n"
               "  python -m pipeline.prepare --corpus fineweb --executor ray --ray-address auto   # on a Ray cluster\n"
               "  python -m pipeline.prepare --corpus fineweb --executor slurm --partition cpu --time 4:00:00\n"
               "  sbatch --nodes=8 slurm/prepare.sh --corpus fineweb --output data/fineweb   # Ray inside a Slurm job\n")
    parser.add_argument("--corpus", default=None,
                        help="corpus to prepare (default: sample, or local when --input is given)")
    parser.add_argument("--input", help="local files for --corpus local: a file, a folder (searched recursively) or "
                                        "a quoted glob; .jsonl, .jsonl.gz, .jsonl.zst, .parquet. For --corpus "
                                        "commoncrawl: WARC files, folders, globs or s3:// URLs (comma-separated)")
    parser.add_argument("--subset", help="Hub corpora: fineweb, fineweb-edu: sample-10BT / sample-100BT / "
                                         "sample-350BT or a dump such as CC-MAIN-2024-10 (default: sample-10BT); "
                                         "fineweb-2: a language config such as cmn_Hani (cmn_Hani/test: its test "
                                         "split); fineweb-edu-chinese: 4_5 (default), 3_4, 2_3")
    parser.add_argument("--hub-mirror", metavar="DIR",
                        help="Hub corpora: read a local copy laid out like the Hub repository (e.g. made by "
                             "`huggingface-cli download HuggingFaceFW/fineweb --repo-type dataset "
                             "--include 'sample/10BT/*' --local-dir DIR`) instead of streaming hf://datasets/...")
    parser.add_argument("--rehydrate", action="store_true",
                        help="repeat each document by the size of its duplicate cluster (minhash_cluster_size) "
                             "with FineWeb-2's weights: --corpus fineweb-2, or a run whose dedup records it "
                             "(--recipe fineweb2); tokens before and after go in manifest.json")
    parser.add_argument("--text-key", default="text", help="field of a jsonl/parquet record holding the text "
                                                           "(default: text)")
    parser.add_argument("--data", "--output", dest="output", metavar="DIR",
                        help="the shard folder to write, the --data of model.train (default: data/<corpus>)")
    parser.add_argument("--shard-tokens", type=int, default=100_000_000,
                        help="tokens per train shard; the last shard holds the rest (default: 100,000,000)")
    parser.add_argument("--val-tokens", type=int, default=10_000_000,
                        help="tokens of the validation shard val_000000.bin, taken as whole documents from the "
                             f"start of the shuffled corpus, but never more than {VAL_MAX_FRACTION * 100:.0f}%% of the "
                             "corpus so a small corpus still trains on most of its text; 0 = no validation shard "
                             "(default: 10,000,000)")
    parser.add_argument("--val-subset", metavar="SUBSET",
                        help="cut val_000000.bin from this held-out split of the corpus instead (whole documents, up "
                             "to --val-tokens, no cap), and train on every document of --subset: --corpus fineweb-2 "
                             "--subset cmn_Hani --val-subset cmn_Hani/test (pipeline/tokens/val_source.py)")
    parser.add_argument("--workers", type=int, default=None,
                        help="tasks running at the same time (default: this machine's CPUs; with --executor ray the "
                             "cluster's CPUs / --cpus-per-task; with slurm no limit)")
    parser.add_argument("--tasks", type=int, default=None,
                        help="datatrove tasks the input is split into (default: one per input file, at most "
                             f"{MAX_DEFAULT_TASKS}; the sample corpus: --workers; 1 with --limit); the shards come "
                             "out the same for any number of tasks unless --limit is used")
    parser.add_argument("--limit", type=int, default=None,
                        help="read at most this many documents (split evenly between tasks), for quick runs")
    parser.add_argument("--restart", action="store_true",
                        help="an interrupted run of another command or input left unfinished work in "
                             f"OUTPUT/{WORK_FOLDER}: redo what changed instead of refusing (without it, rerunning the "
                             "same command resumes, skipping the finished tasks)")
    add_force_argument(parser)  # --output: a folder of the user's only with --force (gptstack/output_folder.py)
    add_cli_arguments(parser)  # --recipe, --languages (pipeline/clean)
    add_tokenizer_arguments(parser)  # --tokenizer NAME|PATH|train, --vocab-size ... (pipeline/tokenizer/plan.py)
    add_executor_arguments(parser)  # --executor, --ray-address, --partition ... (pipeline/runner/executors.py)
    group = parser.add_argument_group("dedup and shuffle (see docs/data.md)")
    add_dedup_arguments(group)  # --dedup (pipeline/dedup)
    add_shuffle_arguments(group)  # --seed, --shuffle-buckets (pipeline/tokens/shuffle.py)
    args = parser.parse_args(argv)
    args.corpus = args.corpus or ("local" if args.input else "sample")
    for flag in ("shard_tokens", "workers", "tasks", "limit", "shuffle_buckets"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.val_tokens < 0:
        raise InputError(f"--val-tokens must be 0 or more, got {args.val_tokens}")
    if args.shard_tokens >= 2**31:
        raise InputError(f"--shard-tokens {args.shard_tokens} does not fit the shard header's int32 token count")
    return args
