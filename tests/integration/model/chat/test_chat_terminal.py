"""`gptstack chat` in a real terminal: tmux runs it in a pseudo-terminal, the test types Chinese and English keys
(readline's line editing over wide characters included), reads the screen, and compares each streamed reply with the
generation core's greedy reply in this process; then /reset and /quit. Ctrl-D (end of input) ends it too."""
import io
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from model.chat.cli import main as chat_main
from model.chat.load import load_chat
from model.chat.session import ChatSession, Sampling
from tests.support import REPO_ROOT
from tests.support.chat import random_chat_run

SYSTEM = "你是一个助手。Be brief."
SAMPLING = Sampling(temperature=0, repetition_penalty=1.5, max_new_tokens=6)
FLAGS = ["--temperature", "0", "--repetition-penalty", "1.5", "--max-new-tokens", "6", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return random_chat_run(tmp_path_factory.mktemp("chat"))


def words(text: str) -> str:
    return " ".join(text.split())  # the screen wraps and pads lines: compare the words


def screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-J", "-t", session], capture_output=True, text=True,
                          check=True).stdout


def wait_for(session: str, predicate, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = screen(session)
        if predicate(text):
            return text
        assert time.monotonic() < deadline, text
        time.sleep(0.2)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_chat_in_a_real_terminal_streams_replies_edits_wide_characters_resets_and_quits(run):
    engine, chat_format = load_chat(run, device="cpu")
    session = ChatSession(engine, chat_format, SYSTEM)
    first = "".join(session.turn("你好，世界", SAMPLING))
    second = "".join(session.turn("中文Xabc", SAMPLING))  # what the edited line below becomes
    session.reset()
    after_reset = "".join(session.turn("hello", SAMPLING))
    assert len({first, second, after_reset}) == 3 and all(r.strip() for r in (first, second, after_reset))

    name = f"gptstack-chat-test-{uuid.uuid4().hex[:8]}"
    command = " ".join([sys.executable, "-m", "model.chat", "--checkpoint", str(run), "--system", f"'{SYSTEM}'",
                        *FLAGS])
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "200", "-y", "50", "-c", str(REPO_ROOT),
                    "-e", "LANG=C.UTF-8", f"{command}; echo chat-exited-$?; sleep 60"], check=True)
    try:
        wait_for(name, lambda text: text.rstrip().endswith(">>>"))
        subprocess.run(["tmux", "send-keys", "-t", name, "你好，世界", "Enter"], check=True)
        text = wait_for(name, lambda text: text.count(">>>") == 2)
        assert words(f">>> 你好，世界 {first} >>>") in words(text)
        # typed "中文abc", then Home and two characters right (two wide characters, four columns), then "X"
        subprocess.run(["tmux", "send-keys", "-t", name, "中文abc", "C-a", "Right", "Right", "X", "Enter"], check=True)
        text = wait_for(name, lambda text: text.count(">>>") == 3)
        assert words(f">>> 中文Xabc {second} >>>") in words(text)
        subprocess.run(["tmux", "send-keys", "-t", name, "/reset", "Enter", "hello", "Enter"], check=True)
        text = wait_for(name, lambda text: text.count(">>>") == 5)
        assert words(f">>> /reset [conversation reset] >>> hello {after_reset} >>>") in words(text)
        subprocess.run(["tmux", "send-keys", "-t", name, "/quit", "Enter"], check=True)
        wait_for(name, lambda text: "chat-exited-0" in text)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_end_of_input_ends_the_chat(run, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))  # then end of input, as Ctrl-D on a terminal
    chat_main(["--checkpoint", str(run), *FLAGS])
    engine, chat_format = load_chat(run, device="cpu")
    reply = "".join(ChatSession(engine, chat_format).turn("hi", SAMPLING))
    assert capsys.readouterr().out == f">>> {reply}\n>>> \n"
