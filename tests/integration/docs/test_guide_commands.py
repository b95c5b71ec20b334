"""The learner's guide must not rot: its runnable commands are run, in order, exactly as written.

docs/guide.md and docs/guide.zh.md mark every runnable command with a fenced block whose info string is
`bash test`. This test takes those blocks from BOTH guides (they must be the same commands; full-line comments,
which are in each guide's language, are ignored), joins them into one bash script, and runs it with `set -euo
pipefail` in a scratch folder that looks like the repository root (its files linked in, `data/` and `runs/`
fresh), so a command that no longer works fails the test and names its block. The guide's own settings are its
tiny ones, except the variables below, which the test assigns smaller values where the guide assigns them.
The guides' other promises are checked too: the figures they show exist (drawn by docs/make_figures.py, each
small enough to commit), every file they name exists, and every class or function they place in a file
("`model/train.py` (`Trainer`)") is defined there.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.loopback_netns import shared_netns
from tests.support import REPO_ROOT

GUIDES = [REPO_ROOT / "docs" / "guide.md", REPO_ROOT / "docs" / "guide.zh.md"]
SHARED_CRAWL = REPO_ROOT.parent / "shared" / "data" / "crawl" / "news-200.warc.gz"  # test data, never in the guides
# The demo's training steps: 200 in the guide, 20 here (checkpoints at 10 and 20). The cleaning demo reads a Common
# Crawl file over HTTPS in the guide; here, without internet, a local crawl of 200 news pages, 40 of them.
TEST_SETTINGS = {"STEPS": "20", "WARC": str(SHARED_CRAWL), "PAGES": "40"}
# What the script writes into the scratch folder; never linked from the repository.
WRITTEN = {"data", "runs", "logs"}
BLOCK = re.compile(r"^```bash test[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
FIGURE = re.compile(r"!\[[^\]]*\]\((figures/[^)\s]+\.png)\)")


def runnable_blocks(guide: Path) -> list[str]:
    return BLOCK.findall(guide.read_text(encoding="utf-8"))


def without_comment_lines(block: str) -> str:
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))


def guide_script(blocks: list[str], settings: dict[str, str]) -> str:
    """One bash script: the blocks in order, each announced, with the settings substituted; an ERR trap names
    the block that failed."""
    parts = ["set -euo pipefail", 'trap \'echo "GUIDE BLOCK $GUIDE_BLOCK FAILED (exit $?)" >&2\' ERR']
    for number, block in enumerate(blocks, start=1):
        parts += [f"GUIDE_BLOCK={number}", f'echo "### guide block {number}"', block]
    script = "\n".join(parts) + "\n"
    for name, value in settings.items():
        script, count = re.subn(rf"^{name}=\S+", f"{name}={value}", script, flags=re.MULTILINE)
        assert count == 1, f"the guide should assign {name}= once in its runnable blocks, found {count}"
    return script


def scratch_root(folder: Path) -> Path:
    """A folder that looks like the repository root to the guide's relative paths."""
    folder.mkdir()
    for entry in REPO_ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in WRITTEN:
            (folder / entry.name).symlink_to(entry)
    return folder


# "where it lives in the code": `path.py` (`Name`, `Name` in `path.py`, `Name` (`path.py`) and the Chinese forms
PATH = r"`(?P<path>[\w./-]+\.(?:py|sh))`"
NAME = r"`(?P<name>[A-Za-z_][\w.]*)(?:\(\))?`"
CODE_REFERENCES = [re.compile(PATH + r" ?[(（]" + NAME), re.compile(NAME + r" ?(?:in|[(（]) ?" + PATH),
                   re.compile(PATH + r" ?(?:里的|中的|的) ?" + NAME), re.compile(PATH + r", " + NAME)]
FILE_PATH = re.compile(r"`((?:pipeline|model|cluster|configs|slurm|scripts|bench|tests|docs)/[\w./-]+)`")


def defines(path: Path, name: str) -> bool:
    """`name` (or `Class.method`) is a class, function or module-level assignment of the file."""
    text = path.read_text(encoding="utf-8")
    return all(re.search(rf"^\s*(class|def)\s+{re.escape(part)}\b|^{re.escape(part)}\s*[:=]", text, re.MULTILINE)
               for part in name.split("."))


def test_guide_code_references_exist():
    """Every file the guides name exists, and every `Name` they place in a file is defined there."""
    for guide in GUIDES:
        text = guide.read_text(encoding="utf-8")
        for path in FILE_PATH.findall(text):
            assert (REPO_ROOT / path.rstrip("/")).exists(), f"{guide.name} names {path}, which does not exist"
        references = {(m["path"], m["name"]) for pattern in CODE_REFERENCES for m in pattern.finditer(text)}
        assert len(references) >= 15, f"{guide.name}: too few code references found ({len(references)})"
        for path, name in sorted(references):
            assert defines(REPO_ROOT / path, name), f"{guide.name} places {name} in {path}, which does not define it"


def test_both_guides_have_the_same_runnable_commands():
    english, chinese = (runnable_blocks(guide) for guide in GUIDES)
    assert len(english) >= 10, "docs/guide.md lost its runnable blocks (```bash test)"
    assert [without_comment_lines(b) for b in english] == [without_comment_lines(b) for b in chinese], \
        "docs/guide.md and docs/guide.zh.md must mark the same commands as runnable, in the same order"


def test_guide_figures_exist_and_are_small():
    for guide in GUIDES:
        figures = FIGURE.findall(guide.read_text(encoding="utf-8"))
        assert figures, f"{guide.name} shows no figure"
        for figure in figures:
            path = REPO_ROOT / "docs" / figure
            assert path.is_file(), f"{guide.name} shows {figure}, which docs/make_figures.py did not write"
            assert path.stat().st_size < 200_000, f"{path} is {path.stat().st_size:,} bytes: too large to commit"


@pytest.mark.timeout(2400)  # the whole guide, chapter after chapter: ~10 min on an idle 2-core machine
def test_guide_commands_run_in_order(tmp_path):
    blocks = runnable_blocks(GUIDES[0])
    root = scratch_root(tmp_path / "repo")
    script = guide_script(blocks, TEST_SETTINGS)
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO_ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg"}
    # the guide's torchrun opens a TCPStore on every interface: run it where only loopback exists
    result = subprocess.run(shared_netns().wrap(["bash", "-c", script]), cwd=root, env=env, capture_output=True,
                            text=True, timeout=2340)
    failed = re.search(r"GUIDE BLOCK (\d+) FAILED", result.stderr)
    where = f"\n--- block {failed.group(1)} ---\n{blocks[int(failed.group(1)) - 1]}" if failed else ""
    assert result.returncode == 0, f"a documented command failed{where}\n--- output (end) ---\n" \
                                   f"{result.stdout[-3000:]}\n{result.stderr[-4000:]}"
    # What the guide tells the reader they now have
    steps = int(TEST_SETTINGS["STEPS"])
    assert (root / "data" / "sample" / "manifest.json").is_file()
    assert "| # | step" in result.stdout and (root / "data" / "cc-clean" / "report.md").is_file()  # cleaning demo
    assert (root / "runs" / "demo" / "checkpoints" / f"step_{steps:06d}" / "model" / "model.safetensors").is_file()
    assert (root / "runs" / "demo-resumed" / "checkpoints" / f"step_{steps:06d}").is_dir()
    assert (root / "runs" / "demo-hf" / "config.json").is_file()
    assert (root / "runs" / "two-ranks" / "checkpoints" / "step_000006").is_dir()  # 2 ranks, then 1
    assert (root / "runs" / "two-ranks" / "checkpoints" / "step_000004" / "universal").is_dir()
    assert f"of {steps // 2} losses bit-identical" in result.stdout
    shown = {Path(f).name for guide in GUIDES for f in FIGURE.findall(guide.read_text(encoding="utf-8"))}
    drawn = {path.name for path in (root / "runs" / "figures").glob("*.png")}
    assert shown <= drawn, f"docs/make_figures.py no longer draws {sorted(shown - drawn)}"
