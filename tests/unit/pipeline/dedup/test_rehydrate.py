"""FineWeb-2's rehydration weights, the step that applies them, and when a run may ask for it."""
from pathlib import Path

import pytest
import yaml
from datatrove.data import Document

from gptstack.errors import InputError
from pipeline.dedup.config import parse_dedup_section
from pipeline.dedup.rehydrate import Rehydrate, copies, plan_rehydration, rehydration_summary
from pipeline.tokenizer import get_tokenizer
from tests.support import REPO_ROOT


def test_copies_follow_fineweb2s_published_table():
    # huggingface/fineweb-2 README: 1 -> 1, 2 -> 2, 3 -> 3, 4 -> 3, 5..99 -> 5, 100..999 -> 8, 1000+ -> 1
    sizes = [1, 2, 3, 4, 5, 99, 100, 999, 1000, 250_000]
    assert [copies(n) for n in sizes] == [1, 2, 3, 3, 5, 5, 8, 8, 1, 1]


def test_the_step_repeats_documents_with_new_ids_and_counts_tokens(tmp_path):
    gpt2 = get_tokenizer("gpt2")
    documents = [Document(text="一二三", id="a", metadata={"minhash_cluster_size": 4}),
                 Document(text="hello world", id="b", metadata={})]
    step = Rehydrate(str(tmp_path / "summary"), gpt2, "gpt2")
    out = list(step.run(iter(documents), rank=0, world_size=1))
    assert [d.id for d in out] == ["a", "a#rehydrated-1", "a#rehydrated-2", "b"]
    summary = rehydration_summary(tmp_path / "summary")
    a, b = len(gpt2.encode("一二三")), len(gpt2.encode("hello world"))
    assert summary["tokens_before"] == a + b and summary["tokens_after"] == 3 * a + b
    assert (summary["documents_before"], summary["documents_after"], summary["without_cluster_size"]) == (2, 4, 1)


def test_the_fineweb2_recipe_has_the_option_and_a_corpus_without_cluster_sizes_is_refused(tmp_path):
    recipe = yaml.safe_load((REPO_ROOT / "configs" / "recipes" / "fineweb2.yaml").read_text())
    steps = [s["step"] for s in recipe["steps"]]
    assert parse_dedup_section("fineweb2", recipe["dedup"], steps).rehydrate is False
    assert parse_dedup_section("r", {**recipe["dedup"], "rehydrate": True}, steps).rehydrate is True
    assert plan_rehydration(False, False, "fineweb-2", False, Path(tmp_path), None, "gpt2") is None
    assert plan_rehydration(True, False, "fineweb-2", False, Path(tmp_path), None, "gpt2") is not None
    assert plan_rehydration(False, True, "commoncrawl", True, Path(tmp_path), None, "gpt2") is not None
    with pytest.raises(InputError, match="--corpus fineweb-edu-chinese does not have"):
        plan_rehydration(True, False, "fineweb-edu-chinese", False, Path(tmp_path), None, "gpt2")
