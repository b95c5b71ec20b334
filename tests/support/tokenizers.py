"""Small real tokenizer folders for tests: BPE trained in a second on the sample corpus's Wikipedia lead sections."""
import json
from pathlib import Path

from pipeline.read.corpora import sample_corpus_path
from pipeline.tokenizer.train import TrainSettings, train_tokenizer


def train_small(folder: Path, vocab_size: int = 300, documents: int = 300) -> Path:
    """A tokenizer folder at `folder`; another vocab_size (or document count) gives another tokenizer (sha256)."""
    entries = list(json.loads(sample_corpus_path().read_text()).values())[:documents]
    train_tokenizer([e["extract"] for e in entries if e.get("extract")], TrainSettings(vocab_size), folder, "test",
                    progress=False)
    return folder
