"""Models for the GGUF export tests, and llama.cpp's binaries run on them.

A tokenizer trained on English and Chinese (the `sample` and `sample-zh` corpora), tiny models of both families
trained in-process for a few seconds on the same text (so that their greedy choices are clear-cut, not the near-ties
of random weights), and the llama.cpp tools that scripts/build_llama_cpp.sh builds: `llama-tokenize` for ids,
`llama-simple` for a greedy continuation.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from dataclasses import replace

import torch

from model.build import build_model
from model.checkpoint.weights import save_weights
from model.generate import generate_stream
from model.model_config import GPTConfig
from pipeline.read.corpora import sample_corpus_path, sample_zh_corpus_path
from pipeline.read.readers import untag_segmented_line
from pipeline.tokenizer import Tokenizer, get_tokenizer
from pipeline.tokenizer.train import TrainSettings, train_tokenizer

LLAMA_CPP_HOME = Path(os.environ.get("LLAMA_CPP_HOME", Path.home() / ".cache" / "gptstack" / "llama.cpp"))
TOOLS = ("llama-tokenize", "llama-simple")
# Held-out text (not in the training slices below): the ids llama.cpp gives it must be ours
CHINESE = "北京是中国的首都，也是全国的政治和文化中心。今天下午，记者在人民大会堂采访了几位代表。"
ENGLISH = "The history of the city begins in 1850, when 3 families built a mill by the river. It's still there!"
MIXED = "新华社北京1月5日电 (记者 Li Wei) — \"Reform\" 改革开放 20 年，GDP 增长 9.8%。\n\n  Tabs\tand  spaces."


def llama_cpp_bin() -> Path | None:
    """The folder of llama.cpp's tools: $LLAMA_CPP_BIN, else where scripts/build_llama_cpp.sh builds them."""
    folder = Path(os.environ.get("LLAMA_CPP_BIN", LLAMA_CPP_HOME / "build" / "bin"))
    return folder if all((folder / tool).is_file() for tool in TOOLS) else None


def llama_cpp_converter() -> Path | None:
    """convert_hf_to_gguf.py of the llama.cpp source scripts/build_llama_cpp.sh unpacked."""
    found = sorted(LLAMA_CPP_HOME.glob("llama_cpp_python-*/vendor/llama.cpp/convert_hf_to_gguf.py"))
    return found[-1] if found else None


def bilingual_texts(english: int = 400, chinese: int = 600) -> list[str]:
    """Wikipedia lead sections (English) and People's Daily paragraphs (Chinese), the first of each corpus."""
    entries = list(json.loads(sample_corpus_path().read_text()).values())
    texts = [e["extract"] for e in entries[:english] if e.get("extract")]
    with open(sample_zh_corpus_path(), encoding="utf-8") as file:
        for line in file:
            paragraph = untag_segmented_line(line)
            if paragraph:
                texts.append(paragraph)
            if len(texts) >= english + chinese:
                break
    return texts


def bilingual_tokenizer(folder: Path, vocab_size: int = 2048, pattern: str = "gpt4") -> Tokenizer:
    train_tokenizer(bilingual_texts(), TrainSettings(vocab_size, pattern=pattern), folder, "zh-en", progress=False)
    return get_tokenizer(str(folder))


def memorised_text() -> list[str]:
    """What the tiny models learn by heart (about 1,900 ids at 2,048 ids): 4 English articles, 12 Chinese paragraphs."""
    texts = bilingual_texts()
    return texts[:4] + texts[400:412]


# (steps, learning rate) that make each family recite memorised_text: a model that has learned something gives
# continuations that vary and argmaxes that are clear-cut, where random weights give near-ties and repetition
TRAINING = {"gpt2": (250, 3e-3), "qwen3": (150, 1e-2)}


def memorised_ids(tokenizer: Tokenizer) -> list[int]:
    ids = []
    for text in memorised_text():
        ids += tokenizer.encode(text) + [tokenizer.eot_token]
    return ids


def train_on(model: torch.nn.Module, ids: list[int], seed: int = 0) -> torch.nn.Module:
    """AdamW on `ids`, 8 windows of block_size ids a step, on one thread (about 8 s on a busy 2-core machine; more
    threads only wait for each other there)."""
    steps, lr = TRAINING[model.config.arch]
    torch.manual_seed(seed)
    data, block = torch.tensor(ids), model.config.block_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        for _ in range(steps):
            starts = torch.randint(0, len(data) - block - 1, (8,))
            x = torch.stack([data[s: s + block] for s in starts])
            y = torch.stack([data[s + 1: s + block + 1] for s in starts])
            _, loss = model(x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def train_tiny(model: torch.nn.Module, tokenizer: Tokenizer) -> torch.nn.Module:
    """The model after learning memorised_text in `tokenizer`'s ids."""
    return train_on(model, memorised_ids(tokenizer))


def gpt2_vocabulary_model(config: GPTConfig) -> torch.nn.Module:
    """A GPT-2 with OpenAI's 50,257 ids that has learned memorised_text, cheaply: trained with a vocabulary of only
    the ids the text uses (a 50,257-row head costs 20x more a step), then those embedding rows put at their ids of
    the full vocabulary. Every other row is zeros: its logit is exactly 0 in any runtime, so it never wins by
    rounding, and where it wins both runtimes pick the first such id."""
    tokenizer = get_tokenizer("gpt2")
    ids = memorised_ids(tokenizer)
    used = sorted(set(ids))
    small = train_on(build_model(replace(config, vocab_size=len(used))), [used.index(i) for i in ids])
    full = build_model(replace(config, vocab_size=tokenizer.vocab_size)).eval()
    state = small.state_dict()
    embedding = torch.zeros_like(full.state_dict()[full.TOKEN_EMBEDDING])
    embedding[used] = state[small.TOKEN_EMBEDDING][: len(used)]
    state[full.TOKEN_EMBEDDING] = embedding
    if "lm_head.weight" in state:
        state["lm_head.weight"] = embedding  # tied
    full.load_state_dict(state)
    return full


def save_with_tokenizer(model: torch.nn.Module, tokenizer: Tokenizer, folder: Path) -> Path:
    """A weights folder as the trainer writes one: model.safetensors, config.json and the tokenizer's copy."""
    save_weights(model, folder)
    tokenizer.copy_into(folder)
    return folder


def our_greedy(model: torch.nn.Module, tokenizer: Tokenizer, prompt: str, tokens: int) -> list[int]:
    """model.generate's greedy continuation of `prompt`, cut at the first end-of-text (where llama.cpp stops)."""
    idx = torch.tensor([tokenizer.encode(prompt)])
    out = []
    for token in generate_stream(model, idx, tokens, temperature=0.0):
        if token.item() == tokenizer.eot_token:
            break
        out.append(token.item())
    return out


def llama_tokenize(bin_dir: Path, gguf_file: Path, text: str) -> list[int]:
    """llama.cpp's ids for `text`: no BOS, special-token text as plain text (as our shards encode it)."""
    result = subprocess.run([str(bin_dir / "llama-tokenize"), "-m", str(gguf_file), "--stdin", "--ids", "--no-escape",
                             "--no-parse-special", "--log-disable"], input=text.encode(), capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def llama_greedy(bin_dir: Path, gguf_file: Path, prompt: str, tokens: int) -> tuple[bytes, int]:
    """llama-simple's greedy continuation of `prompt` (the bytes after the prompt it echoes) and the number of
    tokens it says it decoded."""
    result = subprocess.run([str(bin_dir / "llama-simple"), "-m", str(gguf_file), "-n", str(tokens), prompt],
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    echoed = prompt.encode()
    assert result.stdout.startswith(echoed), result.stdout[:200]
    decoded = int(result.stderr.decode(errors="replace").split("decoded ")[1].split()[0])
    return result.stdout[len(echoed):].removesuffix(b"\n"), decoded
