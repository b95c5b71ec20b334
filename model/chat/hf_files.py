"""The chat format in a Hugging Face export: `chat_template` in tokenizer_config.json, <|im_start|>/<|im_end|> as
added special tokens of tokenizer.json, and <|im_end|> among generation_config.json's eos ids (so `generate` stops
at the end of the turn, as our chat does).

A trained tokenizer already holds both tokens (reserved when it was trained): only the template and the eos ids are
added. GPT-2 BPE gets them when the model has their rows, i.e. it was fine-tuned for chat (vocab_size 50,259: SFT
raises it from 50,257; the rows were padding before). A GPT-2-vocabulary base model's export stays as it was: its
Hugging Face embedding has 50,257 rows, and ids 50257/50258 would index past it.
"""
import json
from pathlib import Path

from gptstack.files import atomic_write
from model.chat.template import CHATML_TEMPLATE, IM_END, IM_START, ChatFormat

GENERATION_CONFIG = "generation_config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
CHAT_WRITES = ("chat_template.jinja",)  # besides the tokenizer files an export writes anyway


def chat_export_format(tokenizer, vocab_size: int) -> ChatFormat | None:
    """The ChatFormat an export of a model with `vocab_size` rows can speak, or None (a GPT-2 base model)."""
    chat = ChatFormat.for_tokenizer(tokenizer) if tokenizer.folder or tokenizer.name == "gpt2" else None
    return chat if chat is not None and max(chat.im_start, chat.im_end) < vocab_size else None


def write_chat_files(folder, tokenizer, vocab_size: int) -> bool:
    """Add the chat format to the export in `folder` (its tokenizer files and generation_config.json are written
    already); False when the model cannot speak it (nothing changed)."""
    chat = chat_export_format(tokenizer, vocab_size)
    if chat is None:
        return False
    folder = Path(folder)
    from transformers import AddedToken, AutoTokenizer

    hf = AutoTokenizer.from_pretrained(folder)
    missing = [text for text in (IM_START, IM_END) if text not in hf.get_vocab()]
    if missing:  # GPT-2 BPE: the ids right after its 50,257, as Tokenizer.special_id gives them
        hf.add_tokens([AddedToken(text, special=True, normalized=False) for text in missing], special_tokens=True)
    for text, token_id in ((IM_START, chat.im_start), (IM_END, chat.im_end)):
        if hf.convert_tokens_to_ids(text) != token_id:
            raise AssertionError(f"{text} is id {hf.convert_tokens_to_ids(text)} in the export, {token_id} here")
    hf.chat_template = CHATML_TEMPLATE
    hf.save_pretrained(folder)  # transformers 5 puts the template in chat_template.jinja
    config_path = folder / TOKENIZER_CONFIG  # ... older transformers, vLLM and llama.cpp's converter read it here
    config = json.loads(config_path.read_text())
    config["chat_template"] = CHATML_TEMPLATE
    atomic_write(config_path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    generation_path = folder / GENERATION_CONFIG
    if generation_path.is_file():
        generation = json.loads(generation_path.read_text())
        generation["eos_token_id"] = [chat.im_end, chat.eot]
        atomic_write(generation_path, json.dumps(generation, indent=2) + "\n")
    return True
