"""The OpenAI-compatible HTTP API of `gptstack serve`, on FastAPI: POST /v1/chat/completions (streamed as
server-sent events or not) and GET /v1/models, with OpenAI's request fields, response shapes and JSON errors.

One model answers one request at a time: generation runs in a worker thread holding `lock`, and its KV cache is
reused between requests through the common-prefix rule of model/chat/session.py (a client resending a growing
conversation pays only for the new part). A streaming client that disconnects stops its generation at the next
token. Every error a client can cause is a 4xx JSON body {"error": {message, type, param, code}}; anything else is
a 500 with the same shape, never a traceback.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import math
import threading
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from gptstack.errors import GPTStackError
from model.chat.session import ChatEngine, ContextFullError, Reply, Sampling
from model.chat.template import check_messages

MAX_BODY_BYTES = 8 << 20  # a request larger than this cannot fit any context we serve
MAX_STOPS = 4  # OpenAI's limit


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.kind = message, param, code, status, kind


def error_response(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


def number(body: dict, name: str, default, low: float, high: float, integer: bool = False, low_open: bool = False):
    value = body.get(name)
    if value is None:
        return default
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or (not integer and not math.isfinite(value)) or \
            not (low < value if low_open else low <= value) or value > high:
        bound = f"({low:g}" if low_open else f"[{low:g}"
        raise BadRequest(f"{name}={json.dumps(value)[:40]} must be {'an integer' if integer else 'a number'} in "
                         f"{bound}, {high:g}]", param=name, code="invalid_value")
    return value


def text_parts(messages):
    """OpenAI's newer content form, a list of {"type": "text", "text": ...} parts, joined into the string it means;
    any other part (an image) stays a list, which check_messages refuses."""
    if not isinstance(messages, list):
        return messages
    out = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                             and isinstance(p.get("text"), str) for p in content):
            message = {**message, "content": "".join(p["text"] for p in content)}
        out.append(message)
    return out


def parse_request(body, engine: ChatEngine, chat_format) -> tuple[list[int], Sampling, bool, bool]:
    """A request body -> (prompt ids, sampling, stream?, include usage in the stream?); BadRequest if not valid."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        messages = check_messages(text_parts(body.get("messages")), "request")
    except GPTStackError as e:
        raise BadRequest(str(e), param="messages") from None
    if messages[-1]["role"] == "assistant":
        raise BadRequest("the last message is the assistant's: nothing to answer", param="messages")
    if number(body, "n", 1, 1, 1, integer=True) != 1:
        raise BadRequest("only n=1 is supported", param="n")
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not (isinstance(stop, list) and len(stop) <= MAX_STOPS and all(isinstance(s, str) for s in stop)):
        raise BadRequest(f"stop must be a string or a list of at most {MAX_STOPS} strings", param="stop")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be true or false", param="stream")
    options = body.get("stream_options") or {}
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    prompt = chat_format.encode_prompt(messages)
    room = engine.block_size - len(prompt)
    if room <= 0:
        raise BadRequest(f"the messages are {len(prompt):,} tokens; this model's context is {engine.block_size:,} "
                         f"tokens, with room for the reply", param="messages", code="context_length_exceeded")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = number({"max_tokens": limit}, "max_tokens", room, 1, 10**9, integer=True)
    sampling = Sampling(temperature=number(body, "temperature", 1.0, 0, 2),
                        top_p=number(body, "top_p", 1.0, 0, 1, low_open=True),
                        repetition_penalty=number(body, "repetition_penalty", 1.0, 0, 1e4, low_open=True),
                        max_new_tokens=min(max_tokens, room), stop=tuple(stop))
    return prompt, sampling, stream, include_usage


def create_app(engine: ChatEngine, chat_format, model_name: str, api_key: str | None = None) -> FastAPI:
    app = FastAPI(title="gptstack serve", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()
    created = int(time.time())

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        if api_key is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return error_response(401, "missing or incorrect API key (Authorization: Bearer KEY)",
                                      code="invalid_api_key")
        return await call_next(request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return error_response(error.status_code, str(error.detail), code="not_found" if error.status_code == 404
                              else None)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception):
        return error_response(500, f"internal error: {type(error).__name__}", kind="server_error")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                            "owned_by": "gptstack"}]}

    def run(prompt: list[int], sampling: Sampling, reply: Reply, emit, cancel: threading.Event) -> None:
        """In a worker thread: generate under the lock, emit(piece) for each piece of text."""
        with lock:
            if cancel.is_set():  # the client left while this request waited for the model
                return
            for piece in engine.generate(prompt, sampling, reply):
                if cancel.is_set():
                    return
                emit(piece)

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return error_response(413, f"request body over {MAX_BODY_BYTES >> 20} MiB")
        try:
            try:
                body = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError) as e:
                raise BadRequest(f"the request body is not valid JSON: {e}") from None
            prompt, sampling, stream, include_usage = parse_request(body, engine, chat_format)
        except BadRequest as e:
            return error_response(e.status, e.message, e.kind, e.param, e.code)
        reply = Reply(prompt_tokens=len(prompt))
        ident, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not stream:
            cancel = threading.Event()
            try:
                await asyncio.to_thread(run, prompt, sampling, reply, lambda piece: None, cancel)
            except ContextFullError as e:  # parse_request leaves room: kept for safety
                return error_response(400, str(e), code="context_length_exceeded")
            except GPTStackError as e:  # the weights overflow in this precision (model/generate.py)
                return error_response(500, str(e), kind="server_error")
            return {"id": ident, "object": "chat.completion", "created": now, "model": model_name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                                 "finish_reason": reply.finish_reason}],
                    "usage": usage(reply)}
        return StreamingResponse(events(prompt, sampling, reply, ident, now, include_usage),
                                 media_type="text/event-stream")

    async def events(prompt, sampling, reply, ident, now, include_usage):
        loop, queue, cancel = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()

        def chunk(delta: dict, finish: str | None = None, **extra) -> str:
            data = {"id": ident, "object": "chat.completion.chunk", "created": now, "model": model_name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        def work():
            try:
                run(prompt, sampling, reply, lambda piece: loop.call_soon_threadsafe(queue.put_nowait, piece), cancel)
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except Exception as e:  # noqa: BLE001 -- reported in the stream, which has already begun
                loop.call_soon_threadsafe(queue.put_nowait, e)

        loop.run_in_executor(None, work)
        try:
            yield chunk({"role": "assistant", "content": ""})
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    message = str(item) if isinstance(item, GPTStackError) else f"internal error: {type(item).__name__}"
                    yield f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n"
                    return
                yield chunk({"content": item})
            yield chunk({}, reply.finish_reason)
            if include_usage:
                data = {"id": ident, "object": "chat.completion.chunk", "created": now, "model": model_name,
                        "choices": [], "usage": usage(reply)}
                yield f"data: {json.dumps(data)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            cancel.set()  # a client that went away stops the generation at its next token (the worker then ends)

    return app


def usage(reply: Reply) -> dict:
    completion = len(reply.token_ids)
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": completion,
            "total_tokens": reply.prompt_tokens + completion}
