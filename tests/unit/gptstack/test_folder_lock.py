"""The one folder lock of prepare and train (gptstack/folder_lock.py): busy, taken over, never through a symlink."""
import json
import os
import subprocess
import sys

import pytest

from gptstack.errors import GPTStackError
from gptstack.folder_lock import FolderBusy, FolderLock

HOLD = "import sys, time; from gptstack.folder_lock import FolderLock; FolderLock(sys.argv[1], sys.argv[2], 'trainer').acquire(); print('held', flush=True); time.sleep(60)"


def test_a_held_folder_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / ".lock"), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusy) as busy:
            FolderLock(tmp_path / ".lock", tmp_path, "trainer", hint="or give another --run-dir").acquire()
        message = str(busy.value)
        assert "\n" not in message and f"pid {holder.pid}" in message and "another trainer" in message
        assert message.endswith("or give another --run-dir")
    finally:
        holder.kill()
        holder.wait()
    lock = FolderLock(tmp_path / ".lock", tmp_path, "trainer").acquire()  # the kernel freed it with the process
    assert lock.took_over["pid"] == holder.pid  # and the dead holder's record says who it was
    lock.release()
    assert (tmp_path / ".lock").read_text() == ""  # a clean end leaves an empty record
    again = FolderLock(tmp_path / ".lock", tmp_path, "trainer").acquire()
    assert again.took_over is None
    again.release()


def test_the_record_is_written_only_while_held(tmp_path):
    with FolderLock(tmp_path / "work" / "lock", tmp_path, "prepare") as lock:
        record = json.loads((tmp_path / "work" / "lock").read_text())
        assert record["pid"] == os.getpid() and lock.took_over is None


def test_a_symlinked_lock_path_is_refused_and_its_target_untouched(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("the user's data")
    (tmp_path / ".lock").symlink_to(precious)
    with pytest.raises(GPTStackError, match="symbolic link"):
        FolderLock(tmp_path / ".lock", tmp_path, "trainer").acquire()
    assert precious.read_text() == "the user's data"


def test_a_lock_path_that_is_a_folder_is_one_line(tmp_path):
    (tmp_path / ".lock").mkdir()
    with pytest.raises(GPTStackError, match="a folder"):
        FolderLock(tmp_path / ".lock", tmp_path, "trainer").acquire()
