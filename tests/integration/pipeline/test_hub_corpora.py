"""`pipeline.prepare --corpus fineweb-edu-chinese / cci3-hq --hub-mirror DIR` end to end on mirrors in each
repository's layout and schema, filled with real Chinese news articles: the shards decode to exactly the articles,
and these corpora, deduplicated when they were made, are not deduplicated again by default. (fineweb-2, with
--rehydrate, runs in tests/integration/docs/test_guide_scale_up.py, the guide's own commands.)"""
import pytest

from pipeline.prepare import main as prepare_main
from pipeline.shards import read_manifest
from tests.support.hub_mirrors import chinese_articles, write_cci3_hq, write_fineweb_edu_chinese
from tests.support.shards import decoded_documents


@pytest.mark.parametrize("corpus,subset,write", [("fineweb-edu-chinese", "4_5", write_fineweb_edu_chinese),
                                                 ("cci3-hq", None, write_cci3_hq)])
def test_chinese_hub_corpus_from_a_mirror(tmp_path, corpus, subset, write):
    texts = chinese_articles(24)
    mirror = write(tmp_path / "mirror", texts)
    out = tmp_path / "out"
    prepare_main(["--corpus", corpus, *(["--subset", subset] if subset else []), "--hub-mirror", str(mirror),
                  "--output", str(out), "--val-tokens", "3000", "--tasks", "1"])
    assert sorted(decoded_documents(out)) == sorted(texts)
    manifest = read_manifest(out)
    assert manifest["dedup"] == {"enabled": False} and manifest["corpus"] == corpus


def test_a_mistyped_subset_is_one_error_line_before_anything_is_written(tmp_path, capsys):
    mirror = write_fineweb_edu_chinese(tmp_path / "mirror", chinese_articles(3))
    with pytest.raises(SystemExit) as exit_:
        prepare_main(["--corpus", "fineweb-edu-chinese", "--subset", "45", "--hub-mirror", str(mirror),
                      "--output", str(tmp_path / "out")])
    assert exit_.value.code == 2 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err == ("error: --subset 45: opencsg/Fineweb-Edu-Chinese-V2.1 has the score tiers "
                                       "2_3, 3_4, 4_5 (4_5: the most educational)\n")
