"""The built wheel works outside the checkout: `pip wheel` of the project, installed into a fresh virtual
environment in a temporary folder, prepares the sample corpus and a WARC crawl, trains, samples and exports from
another directory, with every file it reads at run time (recipes, configs) coming from inside the wheel.

The fresh environment gets the project's dependencies by seeing this test's own site-packages through a .pth
file, below its own: nothing is downloaded (no multi-GB torch), and the installed wheel's packages come first.
One fixture builds and installs once; the commands run in order in one test, as a user would type them.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

# What is not the project's source: never copied into the build (the wheel is built from a copy, so the build
# leaves no build/ or egg-info behind in the checkout that others work in). The checkout's own folders are left out
# at its top only: model/data/ is source, data/ beside model/ is not.
NOT_SOURCE_AT_TOP = {".git", ".venv", "data", "runs", "build", "dist", "logs"}
NOT_SOURCE = ("*.egg-info", "__pycache__", ".pytest_cache")


def not_source(folder: str, names: list[str]) -> set[str]:
    top = {name for name in names if name in NOT_SOURCE_AT_TOP} if Path(folder) == REPO_ROOT else set()
    return top | shutil.ignore_patterns(*NOT_SOURCE)(folder, names)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtual environment holding the wheel built from this checkout; returns its bin/ folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = shutil.copytree(REPO_ROOT, root / "source", ignore=not_source)
    # --no-build-isolation: build with this environment's setuptools instead of downloading one.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source),
                    "-w", str(root / "dist")], check=True, timeout=300)
    wheel, = (root / "dist").glob("gptstack-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site_packages = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; "
                                         "print(sysconfig.get_paths()['purelib'])"],
                                        check=True, capture_output=True, text=True).stdout.strip())
    (site_packages / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True, timeout=300)
    return venv / "bin"


def run(bin_dir: Path, cwd: Path, *command: str, timeout: int = 600) -> str:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(DS_ACCELERATOR="cpu", PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    result = subprocess.run([str(bin_dir / command[0]), *command[1:]], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_wheel_prepares_trains_samples_and_exports_outside_the_checkout(installed, tmp_path, shared_data):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run(installed, elsewhere, "python", "-c", "import pipeline, configs; print(pipeline.__file__); "
                "print(configs.path('recipes/fineweb.yaml'))").split()
    assert all(str(installed.parent) in path and REPO_ROOT.as_posix() not in path for path in where), where
    assert run(installed, elsewhere, "gptstack", "--version").startswith("gptstack ")
    assert run(installed, elsewhere, "gptstack", "train", "--version").startswith("gptstack train ")

    # The sample corpus (default recipe `none`) and a real WARC crawl (recipe `fineweb`, FineWeb's cleaning).
    run(installed, elsewhere, "gptstack", "prepare", "--corpus", "sample", "--limit", "200", "--no-dedup",
        "--output", "data/sample")
    run(installed, elsewhere, "gptstack", "prepare", "--corpus", "commoncrawl", "--limit", "20", "--no-dedup",
        "--input", str(shared_data / "crawl" / "news-200.warc.gz"), "--languages", "pt,ru,uk,tr",
        "--output", "data/news")
    news = json.loads((elsewhere / "data" / "news" / "manifest.json").read_text())
    assert news["cleaning"]["recipe"] == "fineweb" and news["cleaning"]["documents"]["kept"] > 0
    run(installed, elsewhere, "python", "-m", "pipeline.inspect", "data/sample", "--tokens", "10")  # python -m too

    # The packaged training config by name, a couple of small steps, then the two users of a checkpoint.
    run(installed, elsewhere, "gptstack", "train", "--config", "tiny-cpu", "--data", "data/sample", "--run-dir",
        "runs/tiny", "--max-steps", "2", "--set", "train.micro_batch_size=2", "--set", "train.tokens_per_step=256",
        "--set", "eval.every=2", "--set", "eval.val_batches=1")
    assert (elsewhere / "runs" / "tiny" / "config.yaml").is_file()
    text = run(installed, elsewhere, "gptstack", "sample", "--checkpoint", "runs/tiny", "--prompt", "The city",
               "--max-new-tokens", "8", "--seed", "1")
    assert text.startswith("The city")
    run(installed, elsewhere, "gptstack", "convert", "--checkpoint", "runs/tiny", "--to-hf", "hf/tiny")
    loaded = run(installed, elsewhere, "python", "-c", "from transformers import GPT2LMHeadModel; "
                 "print(GPT2LMHeadModel.from_pretrained('hf/tiny').num_parameters())")
    assert int(loaded.split()[-1]) > 0
