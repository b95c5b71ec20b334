"""User-facing errors of the whole project.

A `GPTStackError` is something the user can fix (a bad path, a corrupt shard, a wrong option). Its message is ONE
line that names the file or record and says what is wrong. Every command-line entry point catches it in `main()`,
prints `error: <message>` to stderr and exits with code 2, without a traceback (`exit_with_error` does that).
Anything else that escapes is a bug and keeps its traceback.
"""
import sys
from typing import NoReturn


class GPTStackError(Exception):
    """An error the user can act on; str(error) is one line naming the file/record and the problem."""


class ShardError(GPTStackError):
    """A token shard or shard folder (manifest.json) is missing, truncated, corrupt or inconsistent."""


class InputError(GPTStackError):
    """Bad input to data preparation: unknown corpus, missing path, unwritable output folder, wrong option."""


def exit_with_error(error: GPTStackError, code: int = 2) -> NoReturn:
    """Print `error: <message>` on stderr and exit; for the `main()` of every CLI."""
    message = " ".join(str(error).split())  # guarantee one line even if a message carried a newline
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
