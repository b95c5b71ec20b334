"""`gptstack serve` against the real `openai` client: one server (a small run folder, an API key) started for the
module on a free loopback port it picks itself, then one request, a stream, concurrent requests, bad requests,
/v1/models, and the listening sockets; stopped by its pid at the end. Replies are checked against the generation
core run in this process on the same checkpoint (greedy: the same ids)."""
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from cluster.ports import listening_ports
from model.chat.load import load_chat
from model.chat.session import Reply, Sampling
from tests.support import REPO_ROOT
from tests.support.chat import random_chat_run

KEY = "test-key-not-secret"
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
PENALTY = 1.5  # our extension of the request (as vLLM's): varied greedy replies from this random model
GREEDY = {"temperature": 0, "extra_body": {"repetition_penalty": PENALTY}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return random_chat_run(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(run):
    process = subprocess.Popen([sys.executable, "-m", "model.serve", "--checkpoint", str(run), "--port", "0",
                                "--api-key", KEY, "--device", "cpu"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # printed once the socket listens and the model is loaded
        match = re.search(r"at http://127\.0\.0\.1:(\d+)/v1 \(loopback only", line)
        assert match, line + process.stderr.read() if process.poll() is not None else line
        port = int(match.group(1))
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=60)
        deadline = time.monotonic() + 60
        while True:  # the socket accepts before uvicorn's loop serves: wait for the first answer
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
        yield process, port, client
    finally:
        process.terminate()  # uvicorn shuts down on SIGTERM
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def engine(run):
    return load_chat(run, device="cpu")


def expected(engine, messages, max_tokens, stop=()) -> Reply:
    core, chat_format = engine
    core.reset()
    prompt = chat_format.encode_prompt(messages)
    reply = Reply(prompt_tokens=len(prompt))
    sampling = Sampling(temperature=0, repetition_penalty=PENALTY, max_new_tokens=max_tokens, stop=tuple(stop))
    "".join(core.generate(prompt, sampling, reply))
    return reply


def test_one_request_gives_the_greedy_reply_with_usage_and_stop(server, engine, run):
    _, _, client = server
    messages = [SYSTEM, {"role": "user", "content": "你好！What is the capital of France?"}]
    parts = [SYSTEM, {"role": "user", "content": [{"type": "text", "text": "你好！"},  # OpenAI's newer content form
                                                  {"type": "text", "text": "What is the capital of France?"}]}]
    answer = client.chat.completions.create(model="anything", messages=parts, max_tokens=8, **GREEDY)
    want = expected(engine, messages, 8)
    assert answer.choices[0].message.content == want.text and want.text.strip()
    assert answer.choices[0].message.role == "assistant" and answer.model == run.name
    assert answer.choices[0].finish_reason == want.finish_reason
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (want.prompt_tokens, len(want.token_ids))
    assert answer.usage.total_tokens == want.prompt_tokens + len(want.token_ids)
    stop = want.text.strip().split()[-1]  # a word of the reply: the reply ends before it
    cut = client.chat.completions.create(model="m", messages=messages, max_tokens=8, stop=[stop], **GREEDY)
    assert cut.choices[0].message.content == want.text[:want.text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_a_stream_arrives_in_pieces_that_join_to_the_reply(server, engine):
    _, _, client = server
    messages = [{"role": "user", "content": "Tell me a story about a dragon."}]
    chunks = list(client.chat.completions.create(model="m", messages=messages, max_tokens=10, **GREEDY, stream=True,
                                                 stream_options={"include_usage": True}))
    want = expected(engine, messages, 10)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == want.text and len(pieces) > 3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 10 and chunks[-1].usage.prompt_tokens == want.prompt_tokens


def test_concurrent_requests_each_get_their_own_reply(server, engine):
    _, _, client = server
    questions = [[{"role": "user", "content": text}] for text in
                 ("Why is the sky blue?", "写一首关于春天的诗。", "List three fruits.", "How do planes fly?")]

    def ask(index: int) -> str:
        if index % 2:  # streams and plain requests interleaved
            stream = client.chat.completions.create(model="m", messages=questions[index], max_tokens=6,
                                                    stream=True, **GREEDY)
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        return client.chat.completions.create(model="m", messages=questions[index], max_tokens=6,
                                              **GREEDY).choices[0].message.content

    with ThreadPoolExecutor(len(questions)) as pool:
        answers = list(pool.map(ask, range(len(questions))))
    assert answers == [expected(engine, q, 6).text for q in questions]
    assert len(set(answers)) == len(answers)


def raw(port: int, path: str, body: bytes | None = None, key: str | None = KEY) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        assert "Traceback" not in text
        return error.code, json.loads(text)


def test_bad_requests_get_an_openai_json_error_never_a_traceback(server):
    _, port, client = server
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "robot", "content": "hi"}])
    assert caught.value.status_code == 400 and "role 'robot'" in caught.value.message
    for body, param, words in [
        (b"{not json", None, "not valid JSON"),
        (b'{"messages": []}', "messages", "messages is empty"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 7}', "temperature", "[0, 2]"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "max_tokens", "integer"),
        (json.dumps({"messages": [{"role": "user", "content": "word " * 200}]}).encode(), "messages", "context"),
    ]:
        status, answer = raw(port, "/v1/chat/completions", body)
        assert status == 400 and answer["error"]["type"] == "invalid_request_error", (body, answer)
        assert answer["error"]["param"] == param and words in answer["error"]["message"]
    assert raw(port, "/v1/nowhere")[0] == 404
    status, answer = raw(port, "/v1/models", key=None)
    assert status == 401 and answer["error"]["code"] == "invalid_api_key"
    assert raw(port, "/v1/models", key="wrong")[0] == 401


def test_models_lists_the_checkpoint_and_the_server_listens_on_loopback_only(server, run):
    process, port, client = server
    assert [m.id for m in client.models.list()] == [run.name]
    assert listening_ports(process.pid) == [("127.0.0.1", port)]
