"""The reader of `--corpus sample-zh` (pipeline/read/readers.py): People's Daily's word-segmented, tagged lines
(`迈向/v  充满/v`) become running Chinese text, articles start at a headline, and every paragraph is read once."""
from pipeline.read.corpora import sample_zh_corpus_path
from pipeline.read.readers import SegmentedNewsReader, split_articles, untag_segmented_line


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
