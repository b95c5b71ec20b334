"""docs/training.md, "Training on a mixture": the commands run as written, at small scale.

The block is read from the page itself, so the test follows the docs: both prepares get `--limit` and the two trainings
a handful of steps, nothing else changes. Step 3 (`--data ... --set data.sources.zh.weight=0.2`, an annealing phase)
used to exit 2 with "none configured": --set was applied before --data (issue 22).
"""
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT

LIMIT, FIRST_STEPS, SECOND_STEPS = "300", "2", "4"


def documented_commands() -> list[list[str]]:
    """The commands of the bash block under "## Training on a mixture", continuation lines joined."""
    page = (REPO_ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    section = page.split("## Training on a mixture", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    text = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def small(command: list[str], training_index: int) -> list[str]:
    """The same command at small scale: prepares read LIMIT documents, trainings stop after a few steps."""
    if command[:3] == ["python", "-m", "pipeline.prepare"]:
        return [sys.executable, *command[1:], "--limit", LIMIT]
    assert command[:3] == ["python", "-m", "model.train"], command
    steps = FIRST_STEPS if training_index == 0 else SECOND_STEPS
    if "--max-steps" in command:
        command = command[:command.index("--max-steps")] + command[command.index("--max-steps") + 2:]
    return [sys.executable, *command[1:], "--max-steps", steps, "--set", "log.tensorboard=false"]


def test_the_documented_mixture_commands_run_in_order(tmp_path):
    commands = documented_commands()
    assert [c[2] for c in commands] == ["pipeline.prepare", "pipeline.prepare", "model.train", "model.train"]
    assert any(arg.startswith("data.sources.") and arg.endswith(".weight=0.2") for arg in commands[3])
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    trainings = 0
    for command in commands:
        run = small(command, trainings)
        trainings += command[2] == "model.train"
        result = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{shlex.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert "resumed from" in result.stdout  # the annealing phase continued the run of step 2

    run_dir = tmp_path / commands[3][commands[3].index("--run-dir") + 1]
    state = json.loads((run_dir / "checkpoints" / f"step_{int(SECOND_STEPS):06d}" / "trainer_state.json").read_text())
    weights = {name: source["weight"] for name, source in state["loader"]["mixture"]["sources"].items()}
    assert weights["zh"] == pytest.approx(0.2 / 0.7) and weights["en"] == pytest.approx(0.5 / 0.7)  # normalised
