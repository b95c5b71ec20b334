"""The guides' real-scale Chinese example (chapter 11, the `bash scale-up` block) runs, at small scale.

Its commands are taken from docs/guide.md and docs/guide.zh.md (the same in both, comments aside) and run as
written in a scratch folder, with these changes only: `huggingface-cli download` is a shell function that copies
the files its `--include` names out of local mirrors built in each repository's layout (tests/support/
hub_mirrors.py, real Chinese and English text), `HUB`/`VOCAB` are small, `--workers` is 1, and the 8-GPU torchrun
of the 125M model becomes a 2-step CPU run of the tiny model on the same mixture (the real config is still loaded
and checked with --print-config)."""
import os
import re
import subprocess
import sys

from pipeline.shards import read_manifest
from tests.support import REPO_ROOT
from tests.support.hub_mirrors import (chinese_articles, english_texts, write_fineweb2, write_fineweb_edu)

GUIDES = [REPO_ROOT / "docs" / "guide.md", REPO_ROOT / "docs" / "guide.zh.md"]
BLOCK = re.compile(r"^```bash scale-up[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TORCHRUN = "torchrun --nproc-per-node 8 -m model.train --config configs/qwen3-125m-zh-en.yaml"
# Copies what the real command would download: the --include glob, relative to the repository, into --local-dir.
FAKE_DOWNLOAD = """huggingface-cli() {
  local repo=$2 include="" dir=""
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in --include) include=$2; shift 2;; --local-dir) dir=$2; shift 2;; *) shift;; esac
  done
  mkdir -p "$dir" && (cd "$FAKE_HUB/$repo" && cp --parents $include "$OLDPWD/$dir")
}"""


def scale_up_commands(guide) -> str:
    blocks = BLOCK.findall(guide.read_text(encoding="utf-8"))
    assert len(blocks) == 1, f"{guide}: expected one ```bash scale-up block, found {len(blocks)}"
    return "\n".join(re.sub(r"\s+#.*$", "", line) for line in blocks[0].splitlines() if not line.startswith("#"))


def test_guides_scale_up_commands_run(tmp_path):
    commands = scale_up_commands(GUIDES[0])
    assert scale_up_commands(GUIDES[1]) == commands, "guide.md and guide.zh.md must run the same commands"
    assert "--corpus commoncrawl" not in commands and "--tokenizer tokenizers/zh-en" in commands
    hub = tmp_path / "hub"  # the repositories, with more files than the guide downloads
    zh = chinese_articles(40)
    write_fineweb2(hub / "HuggingFaceFW" / "fineweb-2", zh[:30], [1, 2, 3, 4, 5, 150, 2000, 1, 1, 1] * 3, zh[30:])
    write_fineweb_edu(hub / "HuggingFaceFW" / "fineweb-edu", english_texts(60))
    root = tmp_path / "root"
    root.mkdir()
    for entry in REPO_ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in ("data", "runs", "tokenizers"):
            (root / entry.name).symlink_to(entry)
    script = commands.replace(TORCHRUN, f"python -m model.train --config configs/qwen3-125m-zh-en.yaml --print-config "
                                        f"> /dev/null\npython -m model.train --config configs/qwen3-tiny-cpu.yaml "
                                        f"--run-dir runs/scale-up --max-steps 2 --set eval.every=2")
    script = re.sub(r"^HUB=\S+", "HUB=downloads", script, flags=re.MULTILINE)
    script = re.sub(r"^VOCAB=\S+", "VOCAB=600", script, flags=re.MULTILINE)
    script = script.replace("--workers 16", "--workers 1")
    assert "python -m model.train --config configs/qwen3-tiny-cpu.yaml" in script
    env = {**os.environ, "FAKE_HUB": str(hub), "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO_ROOT),
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}  # `python`: this environment's
    result = subprocess.run(["bash", "-c", f"set -euo pipefail\n{FAKE_DOWNLOAD}\n{script}"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # only the first train file matches 000_0000*: the second (001_00000) was not downloaded; the test split was
    assert sorted(str(p.relative_to(root / "downloads" / "fineweb-2"))
                  for p in (root / "downloads" / "fineweb-2").rglob("*.parquet")) == [
        "data/cmn_Hani/test/000_00000.parquet", "data/cmn_Hani/train/000_00000.parquet"]
    zh_manifest, en_manifest = read_manifest(root / "data" / "zh-web"), read_manifest(root / "data" / "en-edu")
    assert zh_manifest["tokenizer"] == en_manifest["tokenizer"] and zh_manifest["vocab_size"] == 600
    rehydration = zh_manifest["rehydration"]  # sizes 1,2,3,4,5,150,2000,1,1,1,1,2,3,4,5: 26 + 14 copies
    assert (rehydration["documents_before"], rehydration["documents_after"]) == (15, 40)  # 000_00000's 15
    train_tokens = sum(s["tokens"] for s in zh_manifest["shards"] if s["split"] == "train")
    assert rehydration["tokens_after"] + rehydration["documents_after"] == train_tokens  # validation cut nothing
    val = [s for s in zh_manifest["shards"] if s["split"] == "val"]  # --val-subset: the test split's 10 documents
    assert [s["documents"] for s in val] == [10] and zh_manifest["validation"]["subset"] == "cmn_Hani/test"
    assert "rehydration (FineWeb-2's weights): 15 -> 40 documents" in result.stdout
    assert (root / "runs" / "scale-up" / "metrics.jsonl").read_text().count('"val_loss.zh"') >= 1
