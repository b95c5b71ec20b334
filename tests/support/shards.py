"""Reading a prepared shard folder back as text, for tests that compare the documents of two prepares."""
import numpy as np

from pipeline.shards import open_shard, read_manifest
from pipeline.tokenizer import get_tokenizer


def decoded_documents(folder) -> list[str]:
    """All documents of a shard folder, val then train, decoded and split at the end-of-text token."""
    manifest = read_manifest(folder)
    tokens = np.concatenate([open_shard(folder / entry["file"]) for entry in manifest["shards"]])
    assert tokens[-1] == manifest["eot_token"]
    ends = np.flatnonzero(tokens == manifest["eot_token"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    encoding = get_tokenizer(manifest["tokenizer"]).encoding
    return [encoding.decode(tokens[s:e].tolist()) for s, e in zip(starts, ends)]
