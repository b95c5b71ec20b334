"""End to end: `python -m pipeline.prepare --corpus commoncrawl --input <real WARC>` -> cleaned shards + report."""
import json
import re
import subprocess
import sys

import numpy as np

from pipeline.shards import open_shard, read_manifest, shard_paths
from pipeline.tokenizer import get_tokenizer
from tests.support import REPO_ROOT


def test_prepare_commoncrawl_writes_clean_shards_and_report(shared_data, tmp_path):
    out = tmp_path / "cc"
    command = [sys.executable, "-m", "pipeline.prepare", "--corpus", "commoncrawl",
               "--input", str(shared_data / "crawl" / "news-200.warc.gz"), "--output", str(out),
               "--limit", "60", "--languages", "all", "--val-tokens", "2000", "--shard-tokens", "20000"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cleaning (fineweb, languages all)" in result.stdout  # (the crawl's first 60 pages hold no English)

    manifest = read_manifest(out)
    cleaning = manifest["cleaning"]
    assert cleaning["documents"]["read"] == 60
    assert cleaning["documents"]["kept"] >= manifest["totals"]["documents"] > 5  # dedup may remove a few more
    report = json.loads((out / "cleaning" / "report.json").read_text())
    assert report["accounting_ok"] and (out / "cleaning" / "report.md").is_file()
    assert (out / "cleaning" / "report.png").is_file() and (out / "cleaning" / "excluded").is_dir()

    encoding = get_tokenizer("gpt2").encoding
    tokens = np.concatenate([open_shard(p) for split in ("val", "train") for p in shard_paths(out, split)])
    text = encoding.decode(tokens.tolist())
    documents = [d for d in text.split("<|endoftext|>") if d]
    assert len(documents) == manifest["totals"]["documents"]
    assert not re.search(r"</?(html|body|div|script|p|a)\b[^>]*>", text, re.I)
