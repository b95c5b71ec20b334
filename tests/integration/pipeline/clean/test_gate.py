"""The language gate in a whole run: `python -m pipeline.prepare --corpus commoncrawl --recipe fineweb2 --languages
zh` on a small real mix (news pages in many languages + Chinese pages) skips the pages of other scripts before
extraction, shows them as their own report row, and ends with the same documents as the chain without the gate.
The gate's rules on single pages: tests/unit/pipeline/clean/test_gate.py."""
import json
import subprocess
import sys

import numpy as np

from pipeline.clean.run import clean
from pipeline.shards import open_shard, shard_paths
from pipeline.tokenizer import get_tokenizer
from tests.support import REPO_ROOT
from tests.support.fineweb2 import read_jsonl_gz, read_records
from tests.support.warc import write_warc

NEWS_PAGES = 14
# small Chinese pages of zh-web-A that the fineweb2 recipe keeps (the last: UTF-8 bytes whose <meta> says gb2312)
CHINESE_URLS = ("zsnews.cn/_synthetic", "dugushici.com/ancient_proses", "news.cn/_synthetic/newspaper4k",
                "piyao.kepuchina.cn/rumor", "news.39.net/shx/240423")
CHINESE_PAGES = len(CHINESE_URLS)


def test_prepare_with_the_gate_keeps_what_the_full_chain_keeps(shared_data, tmp_path):
    news = read_records(shared_data / "crawl" / "news-200.warc.gz")[:NEWS_PAGES]
    chinese = [r for r in read_records(shared_data / "crawl" / "zh-web-A.warc.gz")
               if any(part in r[0] for part in CHINESE_URLS)]
    mix = tmp_path / "mix.warc.gz"
    write_warc(mix, news[:7] + chinese[:2] + news[7:] + chinese[2:])  # (Chinese pages among the others)
    out = tmp_path / "zh"
    command = [sys.executable, "-m", "pipeline.prepare", "--corpus", "commoncrawl", "--recipe", "fineweb2",
               "--languages", "zh", "--input", str(mix), "--output", str(out), "--workers", "1",
               "--val-tokens", "500", "--shard-tokens", "20000"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]

    report = json.loads((out / "cleaning" / "report.json").read_text())
    steps = {row["step"]: row for row in report["steps"]}
    names = [row["step"] for row in report["steps"]]
    assert names.index("language_gate") == names.index("trafilatura") - 1
    gate, dropped = steps["language_gate"], sum(steps["language_gate"]["dropped"].values())
    assert gate["docs_in"] == NEWS_PAGES + CHINESE_PAGES - sum(steps["url_filter"]["dropped"].values())
    assert dropped >= NEWS_PAGES - 2  # (news-200's first pages: other scripts, at most a Chinese one or so)
    assert steps["trafilatura"]["docs_in"] == gate["docs_out"] <= CHINESE_PAGES + 2
    skipped = read_jsonl_gz(next((out / "cleaning" / "excluded").glob("*_language_gate")))
    assert len(skipped) == dropped and {d["metadata"]["filter_reason"] for d in skipped} == {"gate_han"}
    assert report["accounting_ok"]
    assert "language_gate" in (out / "cleaning" / "report.md").read_text()

    # the chain without the gate (in process, `pipeline.clean`'s stage) keeps the same documents, same text
    full = clean(str(mix), str(tmp_path / "full"), "fineweb2", ["zh"], workers=1, options={"language_gate": False})
    assert "language_gate" not in [row["step"] for row in full["steps"]]
    kept_without_gate = sorted(doc["text"] for doc in read_jsonl_gz(tmp_path / "full" / "kept"))
    tokens = np.concatenate([open_shard(p) for split in ("val", "train") for p in shard_paths(out, split)])
    kept_with_gate = sorted(d for d in get_tokenizer("gpt2").encoding.decode(tokens.tolist()).split("<|endoftext|>")
                            if d)
    assert len(kept_without_gate) >= CHINESE_PAGES - 1 and kept_with_gate == kept_without_gate
