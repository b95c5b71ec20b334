"""The chat format: ChatML, as Qwen, MiniMind, transformers, vLLM, llama.cpp and Ollama read it (torch-free).

A conversation is the OpenAI `messages` list, [{"role": "system"|"user"|"assistant", "content": str}, ...], and
each message becomes

    <|im_start|>ROLE\\nCONTENT<|im_end|>\\n

`<|im_start|>` and `<|im_end|>` are single special ids (Tokenizer.special_id: a trained tokenizer reserves them, GPT-2
BPE puts them in the embedding's padding rows, 50257 and 50258); ROLE\\nCONTENT and the \\n after <|im_end|> are
ordinary text, each piece encoded on its own, exactly as a Hugging Face tokenizer splits the rendered template at its
added tokens. So `AutoTokenizer.apply_chat_template(messages)` on an export (CHATML_TEMPLATE is its chat_template)
gives the ids encode_conversation gives (tests/unit/model/chat/test_template.py and the sft integration test check
it). No default system prompt is added: a conversation without one has none, on both sides.

Training loss falls on what the model must learn to say: each assistant message's content and its <|im_end|> (so it
learns to stop); never the role headers, the user's or system's words, or the \\n between turns.
Text that merely looks like a marker inside a message ("<|im_end|>" typed by a user) is encoded as plain text here;
transformers would make it the special id. Our side is the safe one: a user cannot end a turn by typing.
"""
from __future__ import annotations

from gptstack.errors import InputError
from gptstack.formats import short

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
ROLES = ("system", "user", "assistant")

# Qwen's ChatML chat_template, without its tool calls and without a default system prompt: what encode_* produce.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def check_messages(messages, where: str, require_assistant: bool = False) -> list[dict]:
    """`messages` if it is a conversation we can encode, else one-line InputError naming `where` (a file:line, or
    "request"): a non-empty list of {"role", "content": str} objects, roles from ROLES, a system message only first;
    with `require_assistant` (training) at least one assistant message."""
    if not isinstance(messages, list):
        raise InputError(f"{where}: messages is {type(messages).__name__}, not a list of {{role, content}} objects")
    if not messages:
        raise InputError(f"{where}: messages is empty")
    for index, message in enumerate(messages):
        at = f"{where}: messages[{index}]"
        if not isinstance(message, dict):
            raise InputError(f"{at} is {type(message).__name__}, not a {{role, content}} object")
        role = message.get("role")
        if role not in ROLES:
            raise InputError(f"{at}: role {short(role)} is not one of {', '.join(ROLES)}")
        if role == "system" and index:
            raise InputError(f"{at}: a system message may only come first")
        if not isinstance(message.get("content"), str):
            raise InputError(f"{at}: content is {type(message.get('content')).__name__}, not a string")
    if require_assistant and not any(m["role"] == "assistant" for m in messages):
        raise InputError(f"{where}: no assistant message (nothing to learn from)")
    return messages


class ChatFormat:
    """ChatML over one tokenizer: `ChatFormat.for_tokenizer(get_tokenizer(...))`."""

    def __init__(self, tokenizer, im_start: int, im_end: int):
        self.tokenizer = tokenizer
        self.im_start, self.im_end = im_start, im_end
        self.eot = tokenizer.eot_token
        self.stop_ids = {im_end, self.eot}
        # the rows the model needs: GPT-2's chat ids lie past its 50,257 (a model fine-tuned for chat records 50,259)
        self.vocab_size = max(tokenizer.vocab_size, im_start + 1, im_end + 1)
        self._specials = {im_start: IM_START, im_end: IM_END}

    @classmethod
    def for_tokenizer(cls, tokenizer) -> ChatFormat:
        return cls(tokenizer, tokenizer.special_id(IM_START), tokenizer.special_id(IM_END))

    def _header(self, role: str) -> list[int]:
        return [self.im_start, *self.tokenizer.encode(role + "\n")]

    def encode_conversation(self, messages) -> tuple[list[int], list[bool]]:
        """Ids of the whole conversation and, per position, whether that token is a target of the loss (assistant
        content and its <|im_end|>)."""
        ids: list[int] = []
        mask: list[bool] = []
        newline = self.tokenizer.encode("\n")
        for message in messages:
            # role + "\n" + content is one piece of text between two specials, as the HF tokenizer sees it
            header = len((message["role"] + "\n").encode())
            body = self.tokenizer.encode(message["role"] + "\n" + message["content"])
            learn = message["role"] == "assistant"
            ids.append(self.im_start)
            mask.append(False)
            # a token is a target when it starts at or after the header's bytes (content opening with "\n" may merge
            # with the header's newline into one token: that token is the header's, like the prompt's last)
            start = 0
            for token in body:
                ids.append(token)
                mask.append(learn and start >= header)
                start += len(self.tokenizer.encoding.decode_single_token_bytes(token))
            ids += [self.im_end, *newline]
            mask += [learn] + [False] * len(newline)
        return ids, mask

    def encode_prompt(self, messages) -> list[int]:
        """The conversation so far, then <|im_start|>assistant\\n: what a model continues to answer."""
        ids, _ = self.encode_conversation(messages)
        return ids + self._header("assistant")

    def decode(self, ids, keep_special: bool = False) -> str:
        """Text of `ids`; the chat markers as their text with keep_special, else left out (GPT-2's tiktoken encoding
        does not know them)."""
        out, run = [], []
        for token in ids:
            if token in self._specials:
                out.append(self.tokenizer.decode(run))
                run = []
                if keep_special:
                    out.append(self._specials[token])
            else:
                run.append(token)
        out.append(self.tokenizer.decode(run))
        return "".join(out)
