"""`python -m gptstack` as a user runs it, in a process of its own: --version, and an unknown command is one error line."""
import subprocess
import sys

from gptstack import __version__


def test_gptstack_console_script_and_unknown_command():
    script = subprocess.run([sys.executable, "-m", "gptstack", "--version"], capture_output=True, text=True)
    assert script.returncode == 0 and script.stdout == f"gptstack {__version__}\n"
    unknown = subprocess.run([sys.executable, "-m", "gptstack", "pretrain"], capture_output=True, text=True)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: unknown command 'pretrain'")
