"""The chat generation core (model/chat/session.py): the KV cache kept across turns gives the ids a fresh model gives,
the repetition penalty is transformers' processor, text streams without broken characters, stops and context limits.
The chat and serve commands themselves: tests/integration/model/chat/."""
import pytest
import torch
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from model.build import build_model
from model.chat.session import ChatEngine, ChatSession, ContextFullError, Reply, Sampling, StopText, Utf8Stream
from model.chat.template import ChatFormat
from model.gpt import GPTConfig
from pipeline.tokenizer import get_tokenizer

TOKENIZER = get_tokenizer("gpt2")
FORMAT = ChatFormat.for_tokenizer(TOKENIZER)
GREEDY = Sampling(temperature=0, repetition_penalty=1.3, max_new_tokens=10)


def token_bytes(token: int) -> bytes:
    return b"" if token >= TOKENIZER.encoding.n_vocab else TOKENIZER.encoding.decode_single_token_bytes(token)


def tiny_model(arch: str):
    torch.manual_seed(0)
    extra = {"bias": False} if arch == "qwen3" else {}
    config = GPTConfig(vocab_size=FORMAT.vocab_size, n_layer=2, n_head=2, n_embd=32, block_size=160, arch=arch, **extra)
    model = build_model(config)
    with torch.no_grad():  # trained-like magnitudes: clear winners for greedy decoding
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return tiny_model("gpt2")


@pytest.fixture(scope="module", params=["gpt2", "qwen3"])
def either_family(request, model):
    """Both families: their caches differ (learned positions vs rotary keys stored already rotated)."""
    return model if request.param == "gpt2" else tiny_model("qwen3")


def engine(model, stop_ids=None) -> ChatEngine:
    return ChatEngine(model, token_bytes, FORMAT.stop_ids if stop_ids is None else stop_ids)


def test_multi_turn_with_the_kept_cache_equals_recomputing_each_turn(either_family):
    model = either_family
    kept = engine(model)
    session = ChatSession(kept, FORMAT, system="Answer briefly.")
    turns = ["Hello there!", "你好，今天天气怎么样？", "And tomorrow?"]
    replies, prompts = [], []
    for text in turns:
        reply = Reply(prompt_tokens=0)
        "".join(session.turn(text, GREEDY, reply))
        replies.append(reply.token_ids)
        prompts.append(reply.prompt_tokens)
    assert len(session.messages) == 1 + 2 * len(turns)
    for index in range(len(turns)):
        messages = session.messages[:1 + 2 * index] + [session.messages[1 + 2 * index]]
        fresh = Reply(prompt_tokens=0)
        "".join(engine(model).generate(FORMAT.encode_prompt(messages), GREEDY, fresh))
        assert fresh.token_ids == replies[index]
    assert len({tuple(r) for r in replies}) == len(turns)  # real, differing replies
    # the kept cache ran each turn's new tokens only: far fewer than every prompt again plus the replies
    assert kept.fed_tokens < sum(prompts) + sum(map(len, replies)) - prompts[0]


def test_a_prompt_that_differs_from_the_cache_crops_it_to_the_common_prefix(either_family):
    model = either_family
    first = FORMAT.encode_prompt([{"role": "user", "content": "The cat sat on the mat."}])
    second = FORMAT.encode_prompt([{"role": "user", "content": "The cat ran far away, 很远。"}])
    kept = engine(model)
    kept._feed(first)
    before = kept.fed_tokens
    logits = kept._feed(second)
    fresh = model(torch.tensor([second]))[0][0, -1, :model.config.vocab_size]
    torch.testing.assert_close(logits, fresh, rtol=1e-5, atol=1e-5)
    shared = next(i for i, (a, b) in enumerate(zip(first, second)) if a != b)
    assert kept.fed_tokens - before == len(second) - shared  # only the part after the common prefix ran


def test_repetition_penalty_is_transformers_processor_over_the_whole_context(model):
    prompt = FORMAT.encode_prompt([{"role": "user", "content": "Say it again and again."}])
    reply = Reply(prompt_tokens=len(prompt))
    sampling = Sampling(temperature=0, repetition_penalty=1.8, max_new_tokens=8)
    "".join(engine(model, stop_ids=()).generate(prompt, sampling, reply))
    context, changed = list(prompt), 0
    processor = RepetitionPenaltyLogitsProcessor(1.8)
    for token in reply.token_ids:
        ids = torch.tensor([context])
        logits = model(ids)[0][:, -1, :model.config.vocab_size]
        assert int(processor(ids, logits.clone()).argmax()) == token
        changed += int(logits.argmax()) != token
        context.append(token)
    assert changed  # the penalty did change a choice (this model repeats itself without it)


def test_a_stop_id_ends_the_reply_without_text(model):
    prompt = FORMAT.encode_prompt([{"role": "user", "content": "hi"}])
    first = Reply(prompt_tokens=len(prompt))
    "".join(engine(model, stop_ids=()).generate(prompt, GREEDY, first))
    stopped = Reply(prompt_tokens=len(prompt))
    pieces = list(engine(model, stop_ids=[first.token_ids[3]]).generate(prompt, GREEDY, stopped))
    assert stopped.token_ids == first.token_ids[:3] and stopped.finish_reason == "stop"
    assert "".join(pieces) == stopped.text == TOKENIZER.decode(first.token_ids[:3])
    assert first.finish_reason == "length" and len(first.token_ids) == GREEDY.max_new_tokens


def test_chinese_and_emoji_stream_without_broken_characters():
    text = "你好，世界！模型在说话🙂 ok"
    ids = TOKENIZER.encode(text)
    assert any(b"\xef\xbf\xbd" == TOKENIZER.decode([i]).encode()[:3] for i in ids)  # some token alone is half a char
    stream = Utf8Stream(token_bytes)
    pieces = [stream.push(i) for i in ids] + [stream.finish()]
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)


@pytest.mark.parametrize("pieces, stops, expected", [
    (["Hel", "lo\nUs", "er: more"], ["\nUser:"], ["Hel", "lo", ""]),  # "\nUs" held back, then the stop found
    (["a\nU", "nder"], ["\nUser:"], ["a", "\nUnder"]),  # held back, then released: not a stop after all
    (["abc"], [], ["abc"]),
])
def test_stop_texts_end_the_stream_before_them(pieces, stops, expected):
    stop = StopText(stops)
    out = []
    for piece in pieces:
        out.append(stop.push(piece))
        if stop.stopped:
            break
    if not stop.stopped:
        out[-1] += stop.finish()
    assert out == expected


def test_a_full_context_forgets_the_oldest_turns_and_keeps_the_system_prompt(model):
    session = ChatSession(engine(model), FORMAT, system="Be kind.")
    long = "word " * 40
    sampling = Sampling(temperature=0, max_new_tokens=10)
    for _ in range(3):
        "".join(session.turn(long, sampling))
    assert session.dropped >= 2 and session.messages[0] == {"role": "system", "content": "Be kind."}
    assert session.messages[1]["role"] == "user"
    assert len(FORMAT.encode_prompt(session.messages[:-1])) <= model.config.block_size
    with pytest.raises(ContextFullError, match="no room for a reply"):
        "".join(session.turn("word " * 400, sampling))
    session.reset()
    assert session.messages == [{"role": "system", "content": "Be kind."}]
