"""model.train follows the output-folder rule (gptstack/output_folder.py): a folder holding the user's files is
refused in one line with nothing touched, --force says what it replaces, and a run folder of ours resumes as before."""
import hashlib
import subprocess

import pytest

from tests.support.faults import assert_one_line_error
from tests.support.train import TINY, make_shards, run_train


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("run-rule-shards"))


def train(shards, run_dir, *extra) -> subprocess.CompletedProcess:
    return run_train(1, [*TINY, "--set", "eval.every=0", "--data", str(shards), "--run-dir", str(run_dir),
                         "--max-steps", "2", *extra])


def test_a_folder_of_the_users_files_is_refused_then_forced(tmp_path, tiny_shards):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("my own notes\n")
    (run_dir / "train.py").write_text("print('mine')\n")
    before = digest(run_dir)
    refused = train(tiny_shards, run_dir)
    assert_one_line_error(refused, f"--run-dir {run_dir}", "--force")
    assert digest(run_dir) == before  # nothing written, nothing replaced
    forced = train(tiny_shards, run_dir, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert "--force: model.train writes into" in forced.stderr and "config.yaml" in forced.stderr
    assert (run_dir / "train.py").read_text() == "print('mine')\n"  # a name the trainer never writes stays
    again = train(tiny_shards, run_dir, "--max-steps", "3")  # now ours: resumes with no flag
    assert again.returncode == 0, again.stderr[-2000:]
