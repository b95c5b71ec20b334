"""The generation core of `gptstack chat` and `gptstack serve`: one model, its chat format, and a KV cache that
outlives a reply.

The cache remembers which ids it holds (`ChatEngine.cached`). A new prompt (the whole conversation so far, written
by the chat template) is compared with them: the longest common prefix stays in the cache and only the rest is fed
to the model. In a chat that rest is the end of the last reply (`<|im_end|>\\n`) and the new user turn; the reply's
own tokens are already there. Where the template's re-encoding of a reply differs from the ids the model sampled
(BPE has several spellings of a text), the cache is cropped back to the first difference, so the result is always
what a fresh model given the same prompt computes. Cropping costs nothing: KVCache overwrites every position past
`length`, so setting `length` is the whole operation.

When the context is full: ChatSession forgets the oldest turns (the system prompt stays) until the prompt leaves
room for the reply; the positions after the system prompt move, so the cache keeps that prefix and recomputes the
rest once. A reply that reaches block_size stops there (finish_reason "length").
"""
from __future__ import annotations

import codecs
import dataclasses
from collections.abc import Callable, Iterator, Sequence

import torch

from gptstack.errors import GPTStackError
from model.generate import choose_next_token


class ContextFullError(GPTStackError):
    """The prompt alone fills the model's context: no room is left for a reply."""


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How each next token is picked (the semantics of model/generate.py's choose_next_token: Hugging Face's
    order, repetition penalty as RepetitionPenaltyLogitsProcessor over the whole context, then temperature, top-p)."""
    temperature: float = 0.7
    top_p: float | None = None
    repetition_penalty: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()  # texts that end the reply (OpenAI's `stop`), not included in it


@dataclasses.dataclass
class Reply:
    """What one generate() call produced; complete once its text stream is exhausted."""
    prompt_tokens: int
    token_ids: list[int] = dataclasses.field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None  # "stop" (end token or a stop text) or "length" (max tokens or context)


class Utf8Stream:
    """Token ids -> text pieces, never a broken character: a token may end in the middle of a multi-byte UTF-8
    character (most Chinese characters are 3 bytes, often split across two GPT-2 tokens), and the incremental
    decoder keeps those bytes until the character is complete."""

    def __init__(self, token_bytes: Callable[[int], bytes]):
        self.token_bytes = token_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return self.decoder.decode(self.token_bytes(token))

    def finish(self) -> str:
        return self.decoder.decode(b"", final=True)


class StopText:
    """OpenAI's `stop`: the reply ends before the first stop text. Streamed text that could still be the start of a
    stop text is held back until it is clear that it is not."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stopped = False

    def push(self, text: str) -> str:
        if not self.stops:
            return text
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            out, self.pending = self.pending[:min(hits)], ""
            return out
        keep = max((n for s in self.stops for n in range(1, len(s)) if self.pending.endswith(s[:n])), default=0)
        out, self.pending = self.pending[:len(self.pending) - keep], self.pending[len(self.pending) - keep:]
        return out

    def finish(self) -> str:
        out, self.pending = self.pending, ""
        return out


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class ChatEngine:
    """A model with one KV cache reused across calls (see the module docstring). Not thread-safe: the server
    serialises requests with a lock around generate()."""

    def __init__(self, model, token_bytes: Callable[[int], bytes], stop_ids: Sequence[int],
                 device: torch.device | str = "cpu", seed: int = 1337):
        self.model = model.eval()
        self.token_bytes = token_bytes
        self.stop_ids = set(int(i) for i in stop_ids)
        self.device = torch.device(device)
        self.block_size = model.config.block_size
        self.vocab_size = model.config.vocab_size
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.cache = None
        self.cached: list[int] = []  # the ids whose keys/values the cache holds, in order
        self.fed_tokens = 0  # ids run through the model so far (what the kept cache saves shows here)

    def reset(self) -> None:
        self.cache, self.cached = None, []

    def _feed(self, ids: list[int]) -> torch.Tensor:
        """Bring the cache to hold exactly `ids`; return the logits (V,) predicting the token after them."""
        if self.cache is None:
            self.cache, self.cached = self.model.new_kv_cache(), []
        keep = min(common_prefix(self.cached, ids), len(ids) - 1)  # at least one id is fed: its logits are needed
        self.cache.length, self.cached = keep, self.cached[:keep]
        fresh = torch.tensor([ids[keep:]], dtype=torch.long, device=self.device)
        logits, _ = self.model(fresh, kv_cache=self.cache)
        self.cached = list(ids)
        self.fed_tokens += len(ids) - keep
        return logits[0, -1, :self.vocab_size]  # the vocabulary padding is never chosen

    @torch.no_grad()
    def generate(self, prompt: list[int], sampling: Sampling, reply: Reply | None = None) -> Iterator[str]:
        """Stream the reply to `prompt` (ids) as text pieces; `reply` (created if not given) is filled as it goes.
        Stops at a stop id (not part of the text), a stop text, max_new_tokens or the end of the context."""
        if not prompt:
            raise ValueError("an empty prompt")  # the chat template always writes at least <|im_start|>assistant
        room = self.block_size - len(prompt)
        if room <= 0:
            raise ContextFullError(f"the prompt is {len(prompt):,} tokens; the model's context is "
                                   f"{self.block_size:,}: no room for a reply")
        reply = reply if reply is not None else Reply(prompt_tokens=len(prompt))
        text, stops = Utf8Stream(self.token_bytes), StopText(sampling.stop)
        context = list(prompt)
        logits = self._feed(context)
        for _ in range(min(sampling.max_new_tokens, room)):
            seen = torch.tensor([context], dtype=torch.long, device=self.device)
            token = int(choose_next_token(logits[None], seen, sampling.temperature, None, sampling.top_p,
                                          sampling.repetition_penalty, self.generator)[0, 0])
            if token in self.stop_ids:
                reply.finish_reason = "stop"
                break
            reply.token_ids.append(token)
            piece = stops.push(text.push(token))
            reply.text += piece
            if piece:
                yield piece
            if stops.stopped:
                reply.finish_reason = "stop"
                return
            context.append(token)
            if len(context) < self.block_size:
                logits = self._feed(context)
        tail = stops.push(text.finish())
        tail += "" if stops.stopped else stops.finish()
        reply.finish_reason = reply.finish_reason or ("stop" if stops.stopped else "length")
        reply.text += tail
        if tail:
            yield tail


class ChatSession:
    """A terminal conversation: the messages so far and one engine whose cache follows them."""

    def __init__(self, engine: ChatEngine, chat_format, system: str | None = None):
        self.engine, self.format, self.system = engine, chat_format, system
        self.messages: list[dict] = []
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays); the cache keeps its prefix for the next turn."""
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def _fit(self, messages: list[dict], room_wanted: int) -> tuple[list[int], int]:
        """The prompt ids, the oldest turns after the system prompt dropped until `room_wanted` tokens are left
        (or only the last user message remains); returns (ids, how many messages were dropped)."""
        first = 1 if self.system else 0
        dropped = 0
        while True:
            ids = self.format.encode_prompt(messages)
            if len(ids) + room_wanted <= self.engine.block_size or len(messages) - first <= 1:
                return ids, dropped
            # a whole exchange at a time: the kept conversation still starts with a user turn
            messages = messages[:first] + messages[first + 1:]
            dropped += 1
            while len(messages) - first > 1 and messages[first]["role"] != "user":
                messages = messages[:first] + messages[first + 1:]
                dropped += 1

    def turn(self, user_text: str, sampling: Sampling, reply: Reply | None = None) -> Iterator[str]:
        """Stream the answer to `user_text`; afterwards both messages are part of the conversation. Raises
        ContextFullError (conversation unchanged) if the message alone leaves no room for a reply."""
        messages = self.messages + [{"role": "user", "content": user_text}]
        wanted = min(sampling.max_new_tokens, self.engine.block_size // 4)
        prompt, dropped = self._fit(messages, wanted)
        reply = reply if reply is not None else Reply(prompt_tokens=len(prompt))
        reply.prompt_tokens = len(prompt)
        self.dropped = dropped
        yield from self.engine.generate(prompt, sampling, reply)
        first = 1 if self.system else 0
        self.messages = messages[:first] + messages[first + dropped:] + [{"role": "assistant", "content": reply.text}]
