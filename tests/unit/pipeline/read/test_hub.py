"""The Hub corpora's subsets map to their repositories' folders, a mistyped one is one line naming the valid ones,
and each reader gives the documents of a mirror in the repository's layout with its columns as metadata."""
import pytest

from gptstack.errors import InputError
from pipeline.read.corpora import SourceOptions, corpus_readers
from pipeline.read.hub import fineweb2_folder, fineweb_edu_chinese_folder, fineweb_folder
from tests.support.hub_mirrors import chinese_articles, write_cci3_hq, write_fineweb2


def documents(steps):
    data = None
    for step in steps:
        data = step.run(data, rank=0, world_size=1)
    return list(data)


def test_subsets_name_the_repositories_folders():
    assert fineweb_folder(None) == "sample/10BT" and fineweb_folder("CC-MAIN-2024-10") == "data/CC-MAIN-2024-10"
    assert fineweb2_folder("cmn_Hani") == "data/cmn_Hani/train"
    assert fineweb2_folder("cmn_Hani/test") == "data/cmn_Hani/test"
    assert fineweb2_folder("cmn_Hani_removed") == "data/cmn_Hani_removed/train"
    assert fineweb_edu_chinese_folder(None) == "4_5" and fineweb_edu_chinese_folder("2_3") == "2_3"


@pytest.mark.parametrize("corpus,subset,expected", [
    ("fineweb-2", "cmn-Hani", "a FineWeb-2 config is language_Script, e.g. cmn_Hani"),
    ("fineweb-2", None, "--corpus fineweb-2 needs --subset LANGUAGE_Script, e.g. cmn_Hani"),
    ("fineweb-edu-chinese", "4-5", "has the score tiers 2_3, 3_4, 4_5"),
    ("cci3-hq", "4_5", "BAAI/CCI3-HQ has no subsets"),
])
def test_a_mistyped_subset_is_one_line_naming_the_valid_ones(tmp_path, corpus, subset, expected):
    with pytest.raises(InputError) as error:
        corpus_readers(corpus, SourceOptions(subset=subset, hub_mirror=str(tmp_path)), str(tmp_path / "rejected"))
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_a_missing_fineweb2_config_lists_the_close_ones_the_mirror_has(tmp_path):
    texts = chinese_articles(4)
    write_fineweb2(tmp_path, texts, [1] * 4, texts[:1])
    write_fineweb2(tmp_path, texts, [1] * 4, texts[:1], config="jpn_Jpan")
    with pytest.raises(InputError) as error:
        corpus_readers("fineweb-2", SourceOptions(subset="cmn_Hans", hub_mirror=str(tmp_path)), str(tmp_path / "r"))
    assert "data/cmn_Hans/train: no .parquet files" in str(error.value)
    assert f"{tmp_path} has 2 config(s); the nearest: cmn_Hani" in str(error.value)


def test_fineweb2_splits_and_cluster_sizes_from_a_mirror(tmp_path):
    texts = chinese_articles(6)
    write_fineweb2(tmp_path, texts[:4], [1, 2, 150, 4000], texts[4:])
    train = documents(corpus_readers("fineweb-2", SourceOptions(subset="cmn_Hani", hub_mirror=str(tmp_path)),
                                     str(tmp_path / "r")))
    test = documents(corpus_readers("fineweb-2", SourceOptions(subset="cmn_Hani/test", hub_mirror=str(tmp_path)),
                                    str(tmp_path / "r")))
    assert [d.text for d in train] == texts[:4] and [d.text for d in test] == texts[4:]
    assert [d.metadata["minhash_cluster_size"] for d in train] == [1, 2, 150, 4000]
    assert train[0].metadata["language_script"] == "Hani"


def test_cci3_hq_reads_its_jsonl_parts_with_score(tmp_path):
    texts = chinese_articles(4)
    write_cci3_hq(tmp_path, texts)
    read = documents(corpus_readers("cci3-hq", SourceOptions(hub_mirror=str(tmp_path)), str(tmp_path / "r")))
    assert [d.text for d in read] == texts and all(isinstance(d.metadata["score"], float) for d in read)
