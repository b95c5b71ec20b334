"""The GGUF file of a GPT-2-vocabulary chat model (50,259 ids) carries ChatML as tokenizer.chat_template and <|im_end|>
as the end-of-turn id, so llama.cpp's chat tools and Ollama format turns and stop as our chat does (written in
process; ~12 s, the 50k-token vocabulary and merges)."""
import gguf

from model.build import build_model
from model.chat import CHATML_TEMPLATE
from model.gguf_export import write_gguf
from model.gpt import GPTConfig
from pipeline.tokenizer import get_tokenizer


def test_gguf_of_a_chat_model_carries_template_and_end_of_turn(tmp_path):
    model = build_model(GPTConfig.from_name("tiny", block_size=32, vocab_size=50259))
    path = write_gguf(model, get_tokenizer("gpt2"), tmp_path / "chat.gguf")
    reader = gguf.GGUFReader(path)
    field = lambda key: reader.fields[key]  # noqa: E731
    template = field("tokenizer.chat_template")
    assert bytes(template.parts[template.data[0]]).decode() == CHATML_TEMPLATE
    eot = field("tokenizer.ggml.eot_token_id")
    assert int(eot.parts[eot.data[0]][0]) == 50258
    assert len(field("tokenizer.ggml.tokens").data) == 50259
