"""The real commands on corrupt input, under a time limit and an address-space limit: each ends with exit 0, or exit
2 and exactly one stderr line starting `error:` (the last, with no traceback), never a hang or a memory blow-up.

The in-process fuzzers (tests/unit/fuzz/) cover hundreds of cases per format; here the same mutators
(tests/support/fuzz_*.py) make a few cases per command, each the first seed from a fixed start whose mutation is of
a named kind, so that every kind is seen through the command's own `main()`. A failure names the seed and the
mutation; `GPTSTACK_FUZZ_SEED=N` replays the unit fuzzer's case with that seed in process.
"""
import os
import random
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT
from tests.support.fuzz_model import build_checkpoint, mutate_trainer_state, mutate_weights
from tests.support.fuzz_pipeline import (build_shard_folder, build_tokenizer, mutate_manifest, mutate_shards,
                                         mutate_tokenizer)
from tests.support.fuzz_warc import build_warcs, mutate_warc, warc_input

ADDRESS_SPACE = 6 * 2**30  # a command that would allocate past this dies with MemoryError instead of taking the machine
TIMEOUT = 240  # seconds; a valid run of the slowest command here (clean) takes ~20 s on a loaded 2-core machine


@pytest.fixture(scope="module")
def material(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("fuzz-commands")
    tok = build_tokenizer(root / "tok")
    shards = build_shard_folder(root / "shards", tok)
    build_checkpoint(root / "run", tok, shards)
    build_warcs(root / "warc", shared_data)
    return root


def mutant(material: Path, tmp_path: Path, parts: tuple[str, ...], mutate, kind: str, start: int) -> tuple[Path, str]:
    """A copy of `parts` of the material in tmp_path/case, corrupted by the first seed from `start` whose mutation
    says `kind`; returns the folder and "seed N: what was done"."""
    for seed in range(start, start + 2000):
        case = tmp_path / f"case-{seed}"
        for part in parts:
            shutil.copytree(material / part, case / part, symlinks=True)
        what = mutate(random.Random(seed), case)
        if kind in what:
            return case, f"seed {seed}: {what}"
        shutil.rmtree(case)
    raise AssertionError(f"no seed from {start} makes a mutation of kind {kind!r}")


def check(case: str, *args: str) -> None:
    """Run `python -m ARGS` on the corrupt `case` (its seed and mutation, for the message) and hold the promise."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    try:
        result = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=TIMEOUT, preexec_fn=limit, env={**os.environ, "DS_ACCELERATOR": "cpu"})
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{case}\n{' '.join(args)}: still running after {TIMEOUT} s (a hang)") from e
    assert_success_or_one_error_line(result, f"{case}\npython -m {' '.join(args)}")


def assert_success_or_one_error_line(result: subprocess.CompletedProcess, case: str) -> None:
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    context = f"{case}\nexit {result.returncode}; stderr ends:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, context
    if result.returncode == 0:
        assert not errors, context
        return
    assert result.returncode == 2, context
    assert len(errors) == 1 and lines[-1] == errors[0], context


TOKENIZER_KINDS = ("metadata:", "pattern =", "ranks line", "FIFO", "sparse")


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_tokenizer_show(material, tmp_path, kind):
    case, what = mutant(material, tmp_path, ("tok",), mutate_tokenizer, kind, 10_000)
    check(what, "pipeline.tokenizer", "show", str(case / "tok"))


SHARD_KINDS = (("manifest:", mutate_manifest, "verify"), ("a shard entry's file", mutate_manifest, "verify"),
               ("tokenizer copy", mutate_manifest, "no-verify"), ("token id", mutate_shards, "no-verify"),
               ("int32", mutate_shards, "verify"), ("link", mutate_shards, "verify"),
               ("no tokenizer copy", mutate_manifest, "no-verify"))


@pytest.mark.parametrize("kind,mutate,verify", SHARD_KINDS, ids=[f"{kind}-{verify}" for kind, _, verify in SHARD_KINDS])
def test_inspect(material, tmp_path, kind, mutate, verify):
    case, what = mutant(material, tmp_path, ("shards",), mutate, kind, 20_000)
    check(what, "pipeline.inspect", str(case / "shards"), *(["--no-verify"] if verify == "no-verify" else []))


WEIGHTS_KINDS = ("config.json:", "safetensors header", "dtype", "model.safetensors:", "model/tokenizer")


@pytest.mark.parametrize("kind", WEIGHTS_KINDS)
def test_sample(material, tmp_path, kind):
    case, what = mutant(material, tmp_path, ("run",), mutate_weights, kind, 30_000)
    check(what, "model.sample", "--checkpoint", str(case / "run"), "--max-new-tokens", "2", "--device", "cpu")


@pytest.mark.parametrize("kind", ("trainer_state.json:", "with a mixture", "without a tokenizer copy"))
def test_convert_reads_trainer_state(material, tmp_path, kind):
    """model.convert --to-hf writes the model card from the checkpoint's trainer_state.json."""
    case, what = mutant(material, tmp_path, ("run",), mutate_trainer_state, kind, 40_000)
    check(what, "model.convert", "--checkpoint", str(case / "run"), "--to-hf", str(tmp_path / "hf"))


WARC_KINDS = ("crawl.warc.gz: ", "hostile record", "FIFO", "/dev/zero")


@pytest.mark.parametrize("kind", WARC_KINDS)
def test_clean(material, tmp_path, kind):
    case, what = mutant(material, tmp_path, ("warc",), mutate_warc, kind, 50_000)
    check(what, "pipeline.clean", "--input", str(warc_input(case / "warc")), "--output", str(tmp_path / "clean"),
          "--recipe", "none", "--workers", "1")
