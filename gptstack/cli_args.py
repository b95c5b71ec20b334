"""The argument parser every command line of the project uses, so that they all behave alike:

  * a bad value or a missing option is ONE line, `error: ... (see PROG --help)`, exit code 2, the way every
    other problem is reported (gptstack/errors.py), instead of argparse's usage block;
  * `--help` shows each option's default (unless its help text already says it) and the description's and
    epilog's own line breaks, where the examples are.

The one vocabulary the commands share (docs/install.md, "One command"): `--data DIR` is a shard folder (prepare writes it,
inspect/adopt check it, train reads it), `--checkpoint` is our weights side (a run folder, a step folder or a
weights folder), `--run-dir` a training run's output folder, `--limit N` at most N documents in all, `--force` write
into an output folder that is not new, empty or the command's own (`add_force_argument`, gptstack/output_folder.py).
"""
import argparse

from gptstack.errors import InputError, exit_with_error


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and appends "(default: X)" to options whose help does not mention one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.default in (None, False, argparse.SUPPRESS, [])
                or "default" in text.lower() or f"({action.default})" in text or text == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser with the behaviour in the module docstring."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        exit_with_error(InputError(f"{message} (see {self.prog} --help)"))


def add_force_argument(parser: argparse.ArgumentParser, what: str = "--output") -> None:
    """`--force`, the one override of the output-folder rule (gptstack/output_folder.py), with one help text."""
    parser.add_argument("--force", action="store_true",
                        help=f"write into {what} even when it holds files this command did not write: says which "
                             "ones it replaces (only names the command writes; the others stay). Without it "
                             f"{what} must be new, empty, or an earlier output of this command")
