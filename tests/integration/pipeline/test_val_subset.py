"""`pipeline.prepare --corpus fineweb-2 --val-subset cmn_Hani/test` on a mirror in the repository's layout: the
validation shard holds the test split's documents only, whole and in order up to --val-tokens, and the training
shards hold every document of the train split (nothing cut from it); a corpus without a test split is one error
line, before anything is written."""
import numpy as np
import pytest

from pipeline.prepare import main as prepare_main
from pipeline.shards import open_shard, read_manifest
from pipeline.tokenizer import get_tokenizer
from tests.support.hub_mirrors import chinese_articles, write_fineweb2


def shard_documents(folder, split: str) -> list[str]:
    manifest = read_manifest(folder)
    encoding = get_tokenizer(manifest["tokenizer"]).encoding
    tokens = np.concatenate([open_shard(folder / e["file"]) for e in manifest["shards"] if e["split"] == split])
    ends = np.flatnonzero(tokens == manifest["eot_token"])
    return [encoding.decode(tokens[s:e].tolist()) for s, e in zip(np.concatenate([[0], ends[:-1] + 1]), ends)]


def test_validation_comes_from_the_test_split_and_every_train_document_trains(tmp_path):
    train, test = chinese_articles(16), chinese_articles(8, start=16)
    mirror = write_fineweb2(tmp_path / "mirror", train, [1] * len(train), test)
    encoding = get_tokenizer("gpt2").encoding
    first_five = sum(len(encoding.encode_ordinary(text)) + 1 for text in test[:5])  # (+ end-of-text each)
    out = tmp_path / "out"
    prepare_main(["--corpus", "fineweb-2", "--subset", "cmn_Hani", "--hub-mirror", str(mirror), "--output", str(out),
                  "--val-subset", "cmn_Hani/test", "--val-tokens", str(first_five + 10), "--tasks", "1"])
    assert shard_documents(out, "val") == test[:5]  # whole documents, in the split's order, up to --val-tokens
    assert sorted(shard_documents(out, "train")) == sorted(train)
    assert read_manifest(out)["validation"]["subset"] == "cmn_Hani/test"


@pytest.mark.parametrize("corpus,val_subset,message", [
    ("sample", "cmn_Hani/test", "error: --val-subset applies to --corpus fineweb-2 (a corpus that publishes a test "
     "split), not --corpus sample; without it validation is cut from the shuffled corpus\n"),
    ("fineweb-2", "cmn_Hani", "error: --val-subset cmn_Hani: name a fineweb-2 config's test split, e.g. "
     "cmn_Hani/test\n")])
def test_a_val_subset_without_a_test_split_is_one_error_line(tmp_path, capsys, corpus, val_subset, message):
    mirror = write_fineweb2(tmp_path / "mirror", chinese_articles(2), [1, 1], chinese_articles(1, start=2))
    source = ["--subset", "cmn_Hani", "--hub-mirror", str(mirror)] if corpus == "fineweb-2" else []
    with pytest.raises(SystemExit) as exit_:
        prepare_main(["--corpus", corpus, *source, "--val-subset", val_subset, "--output", str(tmp_path / "out")])
    assert exit_.value.code == 2 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err == message
