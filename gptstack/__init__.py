"""gptstack: the `gptstack` command (gptstack/cli.py) and the project's version.

The code itself lives in the packages `pipeline` (data), `model` (training, sampling, export), `cluster` (ranks
from Slurm/torchrun) and `configs` (the YAML files read at run time).
"""
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("gptstack")
except PackageNotFoundError:  # a bare checkout that was never `pip install`ed
    __version__ = "0+unknown"
