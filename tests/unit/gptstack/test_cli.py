"""Every command line speaks alike: `gptstack COMMAND` runs the same main() as `python -m MODULE`, `--version` on
each, `--help` shows defaults and examples, and a bad value is one `error:` line (exit 2), never a usage block.
`python -m gptstack` as its own process: tests/integration/gptstack/test_entry_point.py."""
import importlib
import re

import pytest

from gptstack import __version__
from gptstack.cli import COMMANDS, main as gptstack


def run_main(module: str, argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        code = importlib.import_module(module).main(argv)
        raise SystemExit(code or 0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_shows_examples_and_defaults(name, capsys):
    code, out, _ = run_main(COMMANDS[name][0], ["--help"], capsys)
    # an example is a whole command line, indented, in the description or the epilog
    assert code == 0 and re.search(r"^ +(DS_ACCELERATOR=\S+ )?(python -m|torchrun|gptstack) ", out, re.M), out[-500:]
    if name in ("prepare", "sample", "inspect", "train"):
        assert "(default:" in out or "default" in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_version_on_each_command(name, capsys):
    assert gptstack([name, "--version"]) == 0
    assert capsys.readouterr().out == f"gptstack {name} {__version__}\n"


@pytest.mark.parametrize("module, argv, expected", [
    ("model.sample", ["--checkpoint", "x", "--max-new-tokens", "abc"], "--max-new-tokens: invalid int value"),
    ("model.sample", ["--checkpoint", "x", "--top-p", "2"], "--top-p must be in (0, 1]"),
    ("model.convert", ["--from-hf", "x"], "--from-hf DIR --checkpoint (or --out)"),
    ("model.convert", ["--checkpoint", "x", "--to-hf", "y", "--bogus"], "unrecognized arguments: --bogus"),
    ("model.train", ["--max-steps", "many"], "--max-steps: invalid int value"),
    ("pipeline.inspect", [], "give the shard folder once"),
    ("pipeline.prepare", ["--shard-tokens", "x"], "--shard-tokens: invalid int value"),
    ("pipeline.adopt", [], "the following arguments are required: DIR"),
])
def test_bad_value_is_one_error_line(module, argv, expected, capsys):
    code, out, err = run_main(module, argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "usage:" not in err, err
    assert expected in err


def test_one_name_for_the_shard_folder_and_our_checkpoint():
    from model.convert import main as convert  # noqa: F401  (the alias is checked through the real parser below)
    from pipeline.inspect import parse_args as inspect_args
    from pipeline.prepare import parse_args as prepare_args

    assert prepare_args(["--data", "data/x"]).output == "data/x" == prepare_args(["--output", "data/x"]).output
    assert inspect_args(["--data", "data/x"]).directory == "data/x" == inspect_args(["data/x"]).directory
