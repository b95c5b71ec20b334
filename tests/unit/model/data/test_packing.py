"""data.packing=bos_aligned (model/data/packing.py): rows of whole documents starting with BOS, full, the same for
any number of ranks, resumed exactly from the saved counter and cursor, in one folder and in a mixture."""
import json

import numpy as np
import pytest

from gptstack.errors import ShardError
from model.checkpoint.layout import CheckpointError, _check_trainer_state
from model.config import DataSection
from model.data.batches import TokenBatches
from model.data.mixture_batches import MixtureBatches, SourceSpec
from model.data.packing import BLOCK_WINDOWS, DocumentPacker, PackedBatches, pack_block, split_documents
from model.data.training_data import TrainingData
from pipeline.shards import ShardFolder, build_manifest, shard_entry, shard_name, write_manifest, write_shard

EOT = 50256
SEQ_LEN = 16
WINDOW = 4  # blocks of BLOCK_WINDOWS * 4 = 64 documents: an epoch of 300 documents spans 5 blocks


def make_folder(path, first_value=0, documents=300, seed=0, eot=EOT):
    """Documents of 1..60 tokens, each followed by EOT, over a val and two train shards (one document runs across
    the train shards' boundary). Text token values count up from first_value: each names its document and place."""
    rng = np.random.default_rng(seed)
    tokens, value, cut = [], first_value, None
    for number, length in enumerate(rng.integers(1, 61, documents)):
        if cut is None and number >= documents // 2 and length >= 2:
            cut = len(tokens) + 1  # inside this document: it runs across the train shards' boundary
        tokens.extend(range(value, value + length))
        tokens.append(eot)
        value += length
    tokens = np.array(tokens, dtype=np.uint16)
    pieces = [("val", tokens[:200]), ("train", tokens[:cut]), ("train", tokens[cut:])]
    path.mkdir(parents=True)
    entries = []
    for index, (split, part) in enumerate(pieces):
        name = shard_name(split, index)
        entries.append(shard_entry(name, split, len(part), 0, write_shard(path / name, part)))
    write_manifest(path, build_manifest(entries, "gpt2", 50257, eot, command="tests/unit/model/data/test_packing.py"))
    return ShardFolder(path)


@pytest.fixture()
def folder(tmp_path):
    return make_folder(tmp_path / "en")


def loader(folder, rank=0, world_size=1, batch_size=4, **kwargs):
    kwargs = {"seq_len": SEQ_LEN, "window": WINDOW, **kwargs}
    return PackedBatches(folder, "train", batch_size, rank=rank, world_size=world_size, **kwargs)


def segments(row: np.ndarray) -> list[list[int]]:
    """The row split before each BOS: [[EOT, t, t+1, ...], ...]."""
    starts = np.flatnonzero(row == EOT).tolist()
    return [row[a:b].tolist() for a, b in zip(starts, starts[1:] + [len(row)])]


def nanochat_rows(lengths: list[int], capacity: int, window: int) -> list[list[tuple[int, int]]]:
    """nanochat's best-fit loop (dataloader.py) written plainly, on one block that drains at its end: per row the
    (document, tokens taken) pieces; a last row that cannot be filled is dropped."""
    buffer, rows, row, used, following = [], [], [], 0, 0
    while True:
        while len(buffer) < window and following < len(lengths):
            buffer.append(following)
            following += 1
        if not buffer:
            return rows
        space = capacity - used
        fitting = [doc for doc in buffer if lengths[doc] <= space]
        if fitting:
            doc = max(fitting, key=lambda d: (lengths[d], -buffer.index(d)))  # the largest; the earliest on a tie
            take = lengths[doc]
        else:
            doc = min(buffer, key=lambda d: (lengths[d], buffer.index(d)))  # crop the shortest
            take = space
        buffer.remove(doc)
        row.append((doc, take))
        used += take
        if used == capacity:
            rows.append(row)
            row, used = [], 0


def test_best_fit_is_nanochats_and_every_row_is_full():
    rng = np.random.default_rng(1)
    for capacity, window, top in ((17, 4, 40), (65, 10, 200), (129, 1, 30)):
        lengths = rng.integers(1, top, 500).tolist()
        docs, takes, row_ends = pack_block(lengths, capacity, window)
        rows = [list(zip(docs[a:b], takes[a:b])) for a, b in zip([0] + row_ends[:-1], row_ends)]
        assert rows == nanochat_rows(lengths, capacity, window)
        assert all(sum(take for _, take in row) == capacity for row in rows)
        assert len(set(docs)) == len(docs)  # each document at most once (its rest is dropped when cropped)
        whole = [take == lengths[doc] for doc, take in zip(docs, takes)]
        assert all(whole[b - 1] or whole[a:b - 1] == [True] * (b - 1 - a)  # only a row's last piece is cropped
                   for a, b in zip([0] + row_ends[:-1], row_ends))


def test_rows_start_with_bos_and_hold_whole_documents_in_order(folder):
    batches = loader(folder)
    documents = batches.packer.documents
    starts = {int(documents.read(doc, 2)[1]) for doc in range(documents.count)}  # the first value of each text
    assert documents.count == 300 and batches.packer.blocks_per_epoch == 5
    rows = 0
    for _ in range(40):
        x, y = batches.next_batch()
        assert x.shape == y.shape == (4, SEQ_LEN)
        assert (x[:, 1:] == y[:, :-1]).all()  # targets are the next tokens
        for row in np.concatenate([x.numpy(), y.numpy()[:, -1:]], axis=1):
            assert row[0] == EOT and len(row) == SEQ_LEN + 1
            pieces = segments(row)
            for piece in pieces:
                text = piece[1:]
                assert not text or text[0] in starts  # a document from its first token on
                assert text == list(range(text[0], text[0] + len(text))) if text else True
            for piece in pieces[:-1]:  # all but the last piece are whole: their next value starts another one
                assert piece[-1] + 1 in starts or len(piece) == 1
            rows += 1
    # a document crossing the train shards' boundary reads on across it
    crossing = int(np.flatnonzero(documents.starts < len(documents.shards[0]))[-1])
    length, first = int(documents.lengths[crossing]), int(documents.read(crossing, 2)[1])
    assert documents.starts[crossing] + length - 1 > len(documents.shards[0])
    assert documents.read(crossing, length).tolist() == [EOT] + list(range(first, first + length - 1))


def test_one_epoch_reads_each_document_once_and_measures_full_rows(folder):
    packer = DocumentPacker(split_documents(folder, "train"), SEQ_LEN, WINDOW, seed=3, shuffle=True)
    firsts = []
    rows = sum(packer.block(b).rows for b in range(packer.blocks_per_epoch))
    for k in range(rows):
        firsts += [piece[1] for piece in segments(packer.row(k)) if len(piece) > 1]  # (a lone BOS: cropped to 1)
    assert len(firsts) == len(set(firsts))  # no document twice in an epoch
    assert len(firsts) > 0.9 * packer.documents.count  # the dropped last row of each block holds few of them
    measured = packer.measure(rows=10**9)
    assert measured["rows"] == rows and measured["fill"] == 1.0
    assert 0 < measured["cropped"] < 1
    assert measured["cropped"] == pytest.approx(1 - rows * (SEQ_LEN + 1) / packer.documents.tokens)
    next_epoch = [piece[1] for k in range(rows, rows + 20) for piece in segments(packer.row(k)) if len(piece) > 1]
    assert next_epoch != firsts[:len(next_epoch)]  # a new order each epoch


def test_same_seed_same_rows_other_seed_other_rows(folder):
    rows = [loader(folder, seed=seed).window(k).tolist() for seed in (5, 5, 6) for k in range(30)]
    assert rows[:30] == rows[30:60] and rows[:30] != rows[60:]
    in_order = loader(folder, shuffle=False)  # no shuffle: the first block holds the first 64 documents
    first_block = {int(in_order.packer.documents.read(doc, 2)[1]) for doc in range(BLOCK_WINDOWS * WINDOW)}
    texts = [piece[1] for k in range(in_order.packer.block(0).rows) for piece in segments(in_order.window(k))
             if len(piece) > 1]
    assert set(texts) <= first_block and len(texts) > 0.9 * len(first_block)


def collect(loaders, steps):
    """Rows of `steps` synchronized steps on all ranks, in global order (rank 0's first)."""
    order = []
    for _ in range(steps):
        for batches in loaders:
            x, y = batches.next_batch()
            order += [tuple(r) for r in np.concatenate([x.numpy(), y.numpy()[:, -1:]], axis=1).tolist()]
    return order


def test_the_rows_of_a_step_do_not_depend_on_the_number_of_ranks(folder):
    one = collect([loader(folder, batch_size=8)], 30)
    two = collect([loader(folder, r, 2, batch_size=4) for r in range(2)], 30)
    four = collect([loader(folder, r, 4, batch_size=2) for r in range(4)], 30)
    assert one == two == four
    assert len(one) == 240 > sum(loader(folder).packer.block(b).rows for b in range(5))  # into the second epoch


def test_resume_from_the_saved_state_continues_the_uninterrupted_rows(folder):
    reference = collect([loader(folder, r, 2) for r in range(2)], 40)
    first = [loader(folder, r, 2) for r in range(2)]
    head = collect(first, 23)
    state = json.loads(json.dumps(first[0].state_dict()))  # as trainer_state.json holds it
    assert state["packing"]["block"] > 0 and 0 < state["packing"]["first_row"] <= state["samples_consumed"]
    _check_trainer_state({"step": 23, "loader": state}, "trainer_state.json: ", ("step",))  # the layout accepts it
    assert first[1].state_dict() == state  # every rank would save the same state
    # resumed on 4 ranks of 2 rows: the same global rows
    resumed = [loader(folder, r, 4, batch_size=2) for r in range(4)]
    for batches in resumed:
        batches.load_state_dict(state)
    assert head + collect(resumed, 17) == reference
    # the cursor is a hint: from an earlier block start the rows are the same, found by packing forward
    hinted = loader(folder)
    hinted.load_state_dict({**state, "packing": {**state["packing"], "block": 0, "first_row": 0}})
    assert collect([hinted], 1) == reference[len(head):len(head) + 4]
    # a cursor that cannot lead to the counter (past it, or more than an epoch before it) is refused
    for block, first_row in ((state["packing"]["block"] + 1, state["samples_consumed"] + 1), (0, -10**6)):
        with pytest.raises(ShardError, match="packing cursor .* does not lead to its row 184"):
            loader(folder).load_state_dict({**state, "packing": {**state["packing"], "block": block,
                                                                 "first_row": first_row}})


def test_states_that_cannot_continue_are_refused(folder, tmp_path):
    state = loader(folder).state_dict()
    stream = TokenBatches(folder, batch_size=4, seq_len=SEQ_LEN)
    with pytest.raises(ShardError, match="data.packing=bos_aligned"):
        stream.load_state_dict(state)
    with pytest.raises(ShardError, match="trained with data.packing=stream"):
        loader(folder).load_state_dict(stream.state_dict())
    with pytest.raises(ShardError, match="data.packing_window=4"):
        loader(folder, window=5).load_state_dict(state)
    other = make_folder(tmp_path / "other", documents=301)
    with pytest.raises(ShardError, match="packed from 300 documents, these shards hold 301"):
        loader(other).load_state_dict(state)
    # the trainer's path (model/data/training_data.py): a one-line error before any step
    for packing, saved, was in (("stream", state, "bos_aligned"), ("bos_aligned", stream.state_dict(), "stream")):
        data = TrainingData(DataSection(dir=str(folder.path), seq_len=SEQ_LEN, packing=packing,
                                        packing_window=WINDOW), 4, 0, 1, with_validation=False)
        with pytest.raises(ShardError, match=f"trained with data.packing={was}"):
            data.resume(saved)
    bad = {**state, "packing": {**state["packing"], "first_row": -1}}
    with pytest.raises(CheckpointError, match="loader.packing.first_row"):
        _check_trainer_state({"step": 1, "loader": bad}, "trainer_state.json: ", ("step",))


def test_shards_bos_aligned_cannot_use_are_refused_in_one_line(tmp_path):
    wrong_eot = make_folder(tmp_path / "wrong-eot", eot=7)  # a manifest whose eot_token is not its tokenizer's
    with pytest.raises(ShardError, match="eot_token 7 but its tokenizer 'gpt2' ends documents with 50256"):
        loader(wrong_eot)
    folder = make_folder(tmp_path / "short", documents=3)
    with pytest.raises(ShardError, match="fewer than one row of seq_len \\+ 1 = 1025"):
        loader(folder, seq_len=1024)
    text_only = tmp_path / "text-only"
    text_only.mkdir()
    entries = [shard_entry(name, split, 100, 0, write_shard(text_only / name, np.arange(100, dtype=np.uint16)))
               for name, split in (("val_000000.bin", "val"), ("train_000001.bin", "train"))]
    write_manifest(text_only, build_manifest(entries, "gpt2", 50257, EOT))
    with pytest.raises(ShardError, match="no end-of-text token \\(id 50256\\)") as error:
        loader(ShardFolder(text_only))
    assert "\n" not in str(error.value)


def mixture(tmp_path, weights, rank=0, world_size=1, batch_size=4, packing="bos_aligned"):
    specs = [SourceSpec(name, str(tmp_path / name), weight) for name, weight in weights.items()]
    return MixtureBatches(specs, "train", batch_size, SEQ_LEN, rank, world_size, seed=9, packing=packing,
                          window=WINDOW)


def test_mixture_sources_pack_their_own_documents_and_resume(tmp_path):
    make_folder(tmp_path / "en", first_value=0, seed=1)
    make_folder(tmp_path / "zh", first_value=25_000, seed=2)
    weights = {"en": 0.7, "zh": 0.3}
    packed, stream = mixture(tmp_path, weights), mixture(tmp_path, weights, packing="stream")
    for _ in range(10):
        x, _ = packed.next_batch()
        stream.next_batch()
        assert (packed.last_sources == stream.last_sources).all()  # the choice of source per row is the stream's
        for row, source in zip(x.numpy(), packed.last_sources.tolist()):
            text = row[row != EOT]
            assert row[0] == EOT and ((text >= 25_000) == (packed.names[source] == "zh")).all()
    progress = packed.progress()
    assert progress["en"]["windows"] + progress["zh"]["windows"] == 40 and 0 < progress["zh"]["epochs"] < 1

    reference = collect([mixture(tmp_path, weights, r, 2) for r in range(2)], 30)
    first = [mixture(tmp_path, weights, r, 2) for r in range(2)]
    head = collect(first, 12)
    state = json.loads(json.dumps(first[0].state_dict()))
    _check_trainer_state({"step": 12, "loader": state}, "trainer_state.json: ", ("step",))
    one = mixture(tmp_path, weights, batch_size=8)
    one.load_state_dict(state)
    assert head + collect([one], 18) == reference
    # a new mix at the resume: each source goes on from where it stopped, and a dropped source keeps its cursor
    only_en = mixture(tmp_path, {"en": 1.0})
    assert only_en.load_state_dict(state) is True
    zh_cursor = state["packing"]["sources"]["zh"]
    assert only_en.state_dict()["packing"]["sources"]["zh"] == zh_cursor
    en_next = first[0].packers[0].row(int(first[0].sampler.consumed(first[0].samples_consumed)[0]))
    assert only_en.window(state["samples_consumed"]).tolist() == en_next.tolist()


def test_the_plan_line_reports_fill_and_cropped_share(folder, tmp_path):
    data = TrainingData(DataSection(dir=str(folder.path), seq_len=SEQ_LEN, packing="bos_aligned",
                                    packing_window=WINDOW), 4, 0, 1, with_validation=True)
    plan = data.plan(total_tokens=10_000)
    assert "packing bos_aligned" in plan and "fill 100.0%" in plan and "cropped" in plan
    assert isinstance(data.val[None], TokenBatches)  # validation stays the stream: val_loss compares across both
    assert TrainingData(DataSection(dir=str(folder.path), seq_len=SEQ_LEN), 4, 0, 1, False).plan(10_000) is None
    make_folder(tmp_path / "zh", first_value=25_000, seed=2)
    data = TrainingData(DataSection(sources=[{"dir": str(folder.path), "weight": 1.0, "name": "en"},
                                             {"dir": str(tmp_path / "zh"), "weight": 1.0, "name": "zh"}],
                                    seq_len=SEQ_LEN, packing="bos_aligned", packing_window=WINDOW), 4, 0, 1, False)
    lines = data.plan(total_tokens=10_000).splitlines()
    assert lines[0].startswith("mixture over the run: en 50.0%") and "zh first" in lines[1]
    assert BLOCK_WINDOWS * WINDOW == data.train.packers[0].block_documents
