"""ChatML: which positions carry the loss, the one-line refusals, and that transformers' apply_chat_template on an
export gives exactly our ids (GPT-2 BPE with the two ids in its padding rows, and a trained tokenizer)."""
import shutil

import pytest
from transformers import AutoTokenizer

from gptstack.errors import InputError
from model.chat import ChatFormat, check_messages
from model.chat.hf_files import chat_export_format, write_chat_files
from model.convert import _write_gpt2_tokenizer
from pipeline.tokenizer import get_tokenizer
from pipeline.tokenizer.folder import HF_CONFIG_FILE, HF_FILE
from tests.support.tokenizers import train_small

SYSTEM = {"role": "system", "content": "Be brief."}
TURNS = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
         {"role": "user", "content": "你好，今天天气怎么样？"}, {"role": "assistant", "content": "晴天 ☀"}]


@pytest.fixture(scope="module")
def gpt2():
    return ChatFormat.for_tokenizer(get_tokenizer("gpt2"))


def test_gpt2_chat_ids_are_the_padding_rows(gpt2):
    assert (gpt2.im_start, gpt2.im_end, gpt2.stop_ids, gpt2.vocab_size) == (50257, 50258, {50258, 50256}, 50259)


@pytest.mark.parametrize("system", [True, False])
def test_loss_falls_on_assistant_content_and_its_end_only(gpt2, system):
    messages = [SYSTEM] * system + TURNS
    ids, mask = gpt2.encode_conversation(messages)
    enc = gpt2.tokenizer.encode
    expected_ids, expected_mask = [], []
    for message in messages:
        header = [gpt2.im_start, *enc(message["role"] + "\n")]
        content = enc(message["content"])
        learn = message["role"] == "assistant"
        expected_ids += header + content + [gpt2.im_end] + enc("\n")
        expected_mask += [False] * len(header) + [learn] * (len(content) + 1) + [False]
    assert ids == expected_ids and mask == expected_mask
    # the targets, read back: both answers, each ended by <|im_end|>, and nothing else
    assert gpt2.decode([i for i, m in zip(ids, mask) if m], keep_special=True) == \
        "Hello!<|im_end|>晴天 ☀<|im_end|>"
    assert sum(mask) == len(enc("Hello!")) + len(enc("晴天 ☀")) + 2


def test_content_opening_with_newlines_is_still_split_at_the_header(gpt2):
    ids, mask = gpt2.encode_conversation([{"role": "user", "content": "q"},
                                          {"role": "assistant", "content": "\n\nA"}])
    learned = gpt2.decode([i for i, m in zip(ids, mask) if m], keep_special=True)
    assert learned.endswith("A<|im_end|>") and not learned.startswith("\n\n")  # the merged "\n\n" is the header's


def test_prompt_ends_with_the_assistant_header(gpt2):
    prompt = gpt2.encode_prompt([SYSTEM, TURNS[0]])
    assert gpt2.decode(prompt, keep_special=True) == \
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("messages, says", [
    ({"role": "user"}, "not a list"),
    ([], "messages is empty"),
    (["hi"], "messages[0] is str"),
    ([{"role": "tool", "content": "x"}], "role 'tool' is not one of system, user, assistant"),
    ([{"role": "user", "content": None}], "messages[0]: content is NoneType"),
    ([{"role": "user", "content": "a"}, SYSTEM], "messages[1]: a system message may only come first"),
    ([SYSTEM, {"role": "user", "content": "a"}], "no assistant message"),
])
def test_bad_conversations_are_one_line_naming_where(messages, says):
    with pytest.raises(InputError) as error:
        check_messages(messages, "chats.jsonl:7", require_assistant=True)
    assert str(error.value).startswith("chats.jsonl:7: ") and says in str(error.value) and "\n" not in str(error.value)


def test_a_prompt_needs_no_assistant_turn():
    assert check_messages([TURNS[0]], "request") == [TURNS[0]]


CASES = [TURNS[:2], [SYSTEM] + TURNS, [TURNS[2]], [SYSTEM, TURNS[2], TURNS[3]]]


def check_hf_ids(folder, chat: ChatFormat) -> None:
    hf = AutoTokenizer.from_pretrained(folder)
    for messages in CASES:
        assert hf.apply_chat_template(messages, tokenize=True, return_dict=False) == \
            chat.encode_conversation(messages)[0]
        if messages[-1]["role"] == "user":
            assert hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                          return_dict=False) == chat.encode_prompt(messages)


def test_gpt2_export_applies_the_same_ids(tmp_path, gpt2):
    _write_gpt2_tokenizer(tmp_path, 256)
    assert write_chat_files(tmp_path, gpt2.tokenizer, 50259)
    assert "chat_template" in (tmp_path / "tokenizer_config.json").read_text()
    check_hf_ids(tmp_path, gpt2)


def test_gpt2_base_model_export_gets_no_chat_tokens(gpt2):
    # its Hugging Face embedding has 50,257 rows: ids 50257/50258 would index past it
    assert chat_export_format(gpt2.tokenizer, 50257) is None


def test_trained_tokenizer_export_applies_the_same_ids(tmp_path):
    tokenizer = get_tokenizer(str(train_small(tmp_path / "tok")))
    chat = ChatFormat.for_tokenizer(tokenizer)
    assert chat.vocab_size == tokenizer.vocab_size  # reserved at training time: no new rows
    export = tmp_path / "export"
    export.mkdir()
    for name in (HF_FILE, HF_CONFIG_FILE):
        shutil.copy(tokenizer.path / name, export / name)
    assert write_chat_files(export, tokenizer, tokenizer.vocab_size)
    check_hf_ids(export, chat)
