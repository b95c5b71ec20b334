"""Conversations into rows: the forms read, where bad lines are named, packing vs padding, and the row stream a
checkpoint resumes exactly."""
import json

import numpy as np
import pytest

from gptstack.errors import InputError
from model.chat import ChatFormat
from model.chat.data import RowBatches, build_rows, encode_all, to_messages
from pipeline.tokenizer import get_tokenizer

CHAT = ChatFormat.for_tokenizer(get_tokenizer("gpt2"))


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return str(path)


def test_alpaca_and_sharegpt_lines_become_messages():
    assert to_messages({"instruction": "Translate", "input": "猫", "output": "cat", "system": "Be exact."}, "x") == [
        {"role": "system", "content": "Be exact."}, {"role": "user", "content": "Translate\n\n猫"},
        {"role": "assistant", "content": "cat"}]
    assert to_messages({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}, "x") \
        == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    minimind = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]
    assert to_messages({"conversations": minimind}, "x") == minimind


@pytest.mark.parametrize("line, says", [
    ({"messages": [{"role": "user", "content": "hi"}]}, ":2: no assistant message"),
    ({"messages": [{"role": "tool", "content": "hi"}]}, ":2: messages[0]: role 'tool' is not one of"),
    ({"instruction": "hi", "output": ""}, ":2: no output"),
    ({"text": "hi"}, ":2: no messages, instruction/output or conversations field"),
])
def test_a_bad_conversation_names_its_file_and_line(tmp_path, line, says):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = write_jsonl(tmp_path / "chats.jsonl", [good, line])
    with pytest.raises(InputError) as error:
        encode_all(path, CHAT, 64)
    assert str(error.value).startswith(f"{path}:2: ") and says in str(error.value)


def test_a_conversation_longer_than_the_context_is_refused_or_skipped(tmp_path):
    long = {"messages": [{"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "ok"}]}
    short = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}
    path = write_jsonl(tmp_path / "chats.jsonl", [short, long])
    with pytest.raises(InputError, match=r"chats.jsonl:2: 1\d\d tokens, longer than the context \(data.seq_len 64"):
        encode_all(path, CHAT, 64)
    conversations, skipped = encode_all(path, CHAT, 64, too_long="skip")
    assert (len(conversations), skipped) == (1, 1)


def test_not_json_is_named_by_line(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text('{"messages": []}\n{oops\n')
    with pytest.raises(InputError, match=r"chats.jsonl:1: messages is empty"):
        encode_all(str(path), CHAT, 64)
    path.write_text('\n{oops\n')
    with pytest.raises(InputError, match=r"chats.jsonl:2: not a JSON line"):
        encode_all(str(path), CHAT, 64)


def conversation(n_prompt: int, n_answer: int):
    ids = list(range(1, n_prompt + n_answer + 1))
    return ids, [False] * n_prompt + [True] * n_answer


def test_pack_fills_rows_with_whole_conversations_and_pad_keeps_one_per_row():
    convs = [conversation(3, 2), conversation(2, 2), conversation(4, 4)]  # 5, 4 and 8 tokens; rows of 10
    ids, targets = build_rows(convs, 9, "pack", pad_id=0)
    assert ids.shape == (2, 10)
    assert ids[0].tolist() == [1, 2, 3, 4, 5, 1, 2, 3, 4, 0]  # the 8-token one does not fit: next row
    assert targets[0].tolist() == [-1, -1, -1, 4, 5, -1, -1, 3, 4, -1]
    padded, padded_targets = build_rows(convs, 9, "pad", pad_id=0)
    assert padded.shape == (3, 10) and (padded_targets[:, 1:] >= 0).sum() == (targets[:, 1:] >= 0).sum()


def test_row_stream_resumes_exactly_and_shares_rows_between_ranks():
    ids = np.arange(7 * 5).reshape(7, 5)
    def stream(state=None, rank=0, world=1):
        batches = RowBatches(ids, ids, 2, rank, world, seed=3, shuffle=True)
        if state:
            batches.load_state_dict(state, "ckpt")
        return batches
    one = stream()
    first = [one.next_batch()[0].tolist() for _ in range(5)]  # crosses two epoch boundaries
    state = one.state_dict()
    later = [one.next_batch()[0].tolist() for _ in range(3)]
    assert [stream(state).next_batch()[0].tolist() for _ in range(1)] == later[:1]
    resumed = stream(state)
    assert [resumed.next_batch()[0].tolist() for _ in range(3)] == later
    # two ranks together take what one rank takes in two micro-batches
    r0, r1 = stream(rank=0, world=2), stream(rank=1, world=2)
    assert r0.next_batch()[0].tolist() + r1.next_batch()[0].tolist() == first[0] + first[1]
    with pytest.raises(InputError, match="ckpt: was trained on 9 rows"):
        stream(dict(state, windows_per_epoch=9))
