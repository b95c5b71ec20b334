"""MixtureBatches over real shard folders: the --data syntax, one tokenizer, one global stream for any number of
ranks, resume on another world size and with changed weights."""
import json

import numpy as np
import pytest
import torch

from model.data.batches import TokenBatches
from model.data.mixture import MixtureError
from model.data.mixture_batches import (MixtureBatches, SourceSpec, check_one_tokenizer, parse_data_argument,
                                source_specs)
from gptstack.errors import ShardError
from pipeline.shards import ShardFolder, build_manifest, file_sha256, shard_entry, write_manifest, write_shard

SEQ_LEN = 16
# Token values are global positions, distinct across all folders: the first token of a row names its window
# and its source.
FOLDERS = {"zh": (0, 3000), "en": (20_000, 9000), "code": (40_000, 500)}


def make_folder(root, name, first, train_tokens, tokenizer="gpt2"):
    folder = root / name
    folder.mkdir()
    entries = []
    for split, start, size in (("val", first, 200), ("train", first + 200, train_tokens)):
        file = f"{split}_000000.bin"
        write_shard(folder / file, np.arange(start, start + size, dtype=np.uint16))
        entries.append(shard_entry(file, split, size, 0, file_sha256(folder / file)))
    vocab_size = 50257 if tokenizer == "gpt2" else 50281  # p50k_base; a manifest holds uint16 ids
    write_manifest(folder, build_manifest(entries, tokenizer, vocab_size, vocab_size - 1))
    return folder


@pytest.fixture()
def specs(tmp_path):
    weights = {"zh": 0.5, "en": 0.3, "code": 0.2}
    return [SourceSpec(name, str(make_folder(tmp_path, name, first, size)), weights[name])
            for name, (first, size) in FOLDERS.items()]


def source_of(token: int) -> str:
    return max((first, name) for name, (first, _) in FOLDERS.items() if first <= token)[1]


def rows(loaders, steps):
    """First token of every row, in stream order (rank 0's rows first at each step)."""
    order = []
    for _ in range(steps):
        for loader in loaders:
            x, y = loader.next_batch()
            assert torch.equal(y - x, torch.ones_like(x))  # a window never crosses a shard or source end
            order += x[:, 0].tolist()
    return order


def test_data_argument_and_source_entries():
    assert parse_data_argument("data/fineweb-edu") is None
    assert parse_data_argument("zh=data/zh-web:0.6,en=data/fineweb-edu:0.4") == [
        {"dir": "data/zh-web", "weight": 0.6, "name": "zh"}, {"dir": "data/fineweb-edu", "weight": 0.4, "name": "en"}]
    assert source_specs(parse_data_argument("data/wiki/:1")) == [SourceSpec("wiki", "data/wiki/", 1.0)]
    with pytest.raises(MixtureError, match=r"\[NAME=\]DIR:WEIGHT"):
        parse_data_argument("zh=data/zh-web:0.6,data/en")
    with pytest.raises(MixtureError, match="named web"):
        source_specs([{"dir": "a/web", "weight": 1}, {"dir": "b/web", "weight": 1}])
    with pytest.raises(MixtureError, match="weight 'x'"):
        source_specs([{"dir": "a", "weight": "x"}])
    with pytest.raises(MixtureError, match="unknown key"):
        source_specs([{"dir": "a", "weight": 1, "wieght": 2}])


def test_two_tokenizers_are_refused_in_one_line(specs, tmp_path):
    folders = [ShardFolder(spec.dir) for spec in specs]
    check_one_tokenizer(specs, folders)  # one tokenizer: accepted
    assert {folder.tokenizer_record()["name"] for folder in folders} == {"gpt2"}
    other = SourceSpec("p50k", str(make_folder(tmp_path, "p50", 60_000, 1000, tokenizer="p50k_base")), 0.5)
    with pytest.raises(ShardError) as refused:
        check_one_tokenizer([*specs, other], [*folders, ShardFolder(other.dir)])
    message = str(refused.value)
    assert "\n" not in message and "'p50k_base'" in message and "'gpt2'" in message and "zh" in message


def test_rows_are_windows_of_their_source_in_the_mixture_shares(specs):
    loader = MixtureBatches(specs, batch_size=50, seq_len=SEQ_LEN, seed=3)
    first_tokens = rows([loader], 40)  # 2000 windows
    counts = {name: sum(source_of(t) == name for t in first_tokens) for name in FOLDERS}
    assert counts == pytest.approx({"zh": 1000, "en": 600, "code": 400}, abs=4)
    for token in first_tokens:  # every row starts at a window boundary of its source's train shard
        assert (token - FOLDERS[source_of(token)][0] - 200) % SEQ_LEN == 0
    progress = loader.progress()
    assert {n: p["windows"] for n, p in progress.items()} == counts
    code_windows = (500 - 1) // SEQ_LEN
    assert progress["code"]["epochs"] == pytest.approx(counts["code"] / code_windows)
    assert progress["en"]["tokens"] == counts["en"] * SEQ_LEN


def test_two_ranks_read_the_one_rank_stream_and_resume_on_three(specs):
    single = rows([MixtureBatches(specs, batch_size=6, seq_len=SEQ_LEN)], 60)
    two = [MixtureBatches(specs, batch_size=3, seq_len=SEQ_LEN, rank=r, world_size=2) for r in range(2)]
    stream = rows(two, 25)
    assert stream == single[:150]
    state = json.loads(json.dumps(two[0].state_dict()))
    assert state == two[1].state_dict()
    three = [MixtureBatches(specs, batch_size=2, seq_len=SEQ_LEN, rank=r, world_size=3) for r in range(3)]
    for loader in three:
        assert loader.load_state_dict(state) is False
    stream += rows(three, 35)
    assert stream == single


def test_weight_zero_source_is_never_read(specs):
    off = [SourceSpec(s.name, s.dir, 0.0 if s.name == "en" else s.weight) for s in specs]
    loader = MixtureBatches(off, batch_size=64, seq_len=SEQ_LEN)
    assert not any(source_of(t) == "en" for t in rows([loader], 30))
    assert loader.progress()["en"] == {"windows": 0, "tokens": 0, "epochs": 0.0}


def test_changed_weights_at_resume_continue_every_source(specs):
    before = MixtureBatches(specs, batch_size=40, seq_len=SEQ_LEN, seed=8)
    seen = rows([before], 10)
    state = json.loads(json.dumps(before.state_dict()))
    annealed = [SourceSpec(s.name, s.dir, {"zh": 0.1, "en": 0.1, "code": 0.8}[s.name]) for s in specs]
    after = MixtureBatches(annealed, batch_size=40, seq_len=SEQ_LEN, seed=8)
    assert after.load_state_dict(state) is True
    later = rows([after], 10)
    assert sum(source_of(t) == "code" for t in later) == pytest.approx(320, abs=4)
    for spec in specs:  # each source's rows continue its own stream: nothing repeated within an epoch
        alone = MixtureBatches([SourceSpec(spec.name, spec.dir, 1.0)], batch_size=1, seq_len=SEQ_LEN, seed=8)
        mine = [t for t in seen + later if source_of(t) == spec.name]
        assert mine == [int(alone.window(k)[0]) for k in range(len(mine))], spec.name


def test_states_that_cannot_continue_are_refused(specs):
    one_folder = TokenBatches(specs[0].dir, seq_len=SEQ_LEN).state_dict()
    with pytest.raises(ShardError, match="one shard folder"):
        MixtureBatches(specs, seq_len=SEQ_LEN).load_state_dict(one_folder)
    state = MixtureBatches(specs, seq_len=SEQ_LEN, seed=1).state_dict()
    with pytest.raises(ShardError, match="seed=1"):
        MixtureBatches(specs, seq_len=SEQ_LEN, seed=2).load_state_dict(state)
    with pytest.raises(ShardError, match="seq_len=16"):
        MixtureBatches(specs, seq_len=8, seed=1).load_state_dict(state)


def test_config_sources_from_a_file_the_command_line_and_set(tmp_path):
    from model.config import load_config
    from model.train import parse_args, resolve_config

    config_file = tmp_path / "mix.yaml"
    config_file.write_text("data:\n  sources:\n    - {dir: data/zh-web, weight: 0.6, name: zh}\n"
                           "    - {dir: data/fineweb-edu, weight: 4e-1}\n")
    config = load_config(config_file)
    assert config.data.sources == [{"name": "zh", "dir": "data/zh-web", "weight": 0.6},
                                   {"name": "fineweb-edu", "dir": "data/fineweb-edu", "weight": 0.4}]
    annealed = load_config(config_file, ["data.sources.zh.weight=0.1"])
    assert [s["weight"] for s in annealed.data.sources] == [0.1, 0.4]
    with pytest.raises(MixtureError, match="NAME one of the configured sources"):
        load_config(config_file, ["data.sources.en.weight=0.1"])
    one_folder = load_config(config_file, ["data.dir=data/x"])  # the one set last wins, as with --data
    assert (one_folder.data.dir, one_folder.data.sources) == ("data/x", None)
    replaced = load_config(config_file, ["data.sources=[{dir: a/en, weight: 1}]"])
    assert replaced.data.sources == [{"name": "en", "dir": "a/en", "weight": 1.0}]

    # --data wins over the file: one folder clears the file's mixture, a mixture clears a folder
    one = resolve_config(parse_args(["--config", str(config_file), "--data", "data/sample"]))
    assert (one.data.dir, one.data.sources) == ("data/sample", None)
    mix = resolve_config(parse_args(["--data", "en=data/sample:0.7,zh=data/sample-zh:0.3"]))
    assert mix.data.dir is None and [s["name"] for s in mix.data.sources] == ["en", "zh"]


def test_training_data_for_one_folder_and_for_a_mixture(specs):
    from model.config import DataSection
    from model.data.training_data import TrainingData

    sources = [{"name": s.name, "dir": s.dir, "weight": s.weight} for s in specs]
    mixture = TrainingData(DataSection(sources=sources, seq_len=SEQ_LEN), 4, 0, 1, with_validation=True)
    single = TrainingData(DataSection(dir=specs[0].dir, seq_len=SEQ_LEN), 4, 0, 1, with_validation=True)
    assert "zh 50.0% = 1,600 tokens = " in mixture.plan(3200) and single.plan(3200) is None
    # validation: every source's own val split, the mixture weighted by the mix (first token names the source)
    figures = mixture.validate(lambda val: {"val_loss": float(source_of(int(val.next_batch()[0][0, 0])) == "zh")})
    assert figures == {"val_loss": 0.5, "val_loss.zh": 1.0, "val_loss.en": 0.0, "val_loss.code": 0.0}
    assert single.validate(lambda val: {"val_loss": 2.0}) == {"val_loss": 2.0}
    mixture.train.next_batch()
    assert sum(v for k, v in mixture.progress().items() if k.startswith("tokens.")) == 4 * SEQ_LEN
    assert single.progress() == {} and single.summary() is None
    # a checkpoint of one kind does not continue as the other
    with pytest.raises(ShardError, match="trained on a mixture"):
        single.resume(mixture.train.state_dict())
    with pytest.raises(ShardError, match="one shard folder"):
        mixture.resume(single.train.state_dict())
    assert mixture.fingerprint() != single.fingerprint()
