"""The one rule for every folder a command writes into: ours, or new, or empty; `--force` is the only override.

A command writes only into
  * a folder that does not exist yet, or an empty one;
  * a folder holding our marker, `.gptstack.json`, from an earlier run of the same command (a rerun resumes or
    replaces its own output);
  * a folder an older version of this project wrote before markers existed, recognised by the caller's `legacy`
    test, so that existing users' folders keep working: a shard folder with a valid manifest.json of ours (or an
    unfinished `.prepare-work/`) for pipeline.prepare, a clean output with its `stages/clean.json` record for
    pipeline.clean, a weights folder an earlier `model.convert --from-hf` wrote (config.json and model.safetensors
    only, our config, not a training checkpoint's model/) for model.convert.
Anything else is refused with one line naming the folder (`OutputFolderError`, exit 2) before anything is written.
`--force` writes into it anyway and first says, in one line on stderr, which of its entries it will replace.

The marker is written before anything else and lists the top-level names the command has written there (`record`,
called before they are written). A command deletes or replaces only names it owns (`owns`): the ones recorded, the
ones an older version wrote (legacy folder), or the ones `--force` announced. A user's file beside them, or one
added later under a name the command could write but never did, is never touched.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable, Iterable

from gptstack.errors import InputError
from gptstack.files import atomic_write

MARKER = ".gptstack.json"
MARKER_FORMAT = "gptstack-output"
SHOWN = 4  # entries a one-line message lists before "..."
MARKER_MAX_BYTES = 16 << 20  # a name per shard: room for hundreds of thousands


class OutputFolderError(InputError):
    """An output folder the command must not write into (not ours, another command's, not a folder, unwritable)."""


def _listing(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "")


@dataclass
class OutputFolder:
    """A claimed output folder: `owned` are the top-level names this command may replace (literal names, so that
    a planted marker listing `*` owns nothing more than a file named `*`)."""
    path: Path
    command: str
    what: str = "--output"
    owned: set[str] = field(default_factory=set)
    _written: bool = False

    def owns(self, name: str) -> bool:
        return name in self.owned

    def record(self, names: Iterable[str] = ()) -> None:
        """Create the folder and write the marker with `names` added, before they are written: a crash in between
        still leaves them ours. The first write raises OutputFolderError if the folder cannot be written."""
        names = set(names)
        if self._written and names <= self.owned:
            return
        self.owned |= names
        marker = {"format": MARKER_FORMAT, "command": self.command, "wrote": sorted(self.owned)}
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path / MARKER, json.dumps(marker, indent=2) + "\n")
        except OSError as e:
            if self._written:
                raise  # (a full disk later on is the caller's to report)
            raise OutputFolderError(f"{self.what} {self.path}: not writable ({e.strerror or e})") from None
        self._written = True


def read_marker(folder: Path) -> dict | None:
    """The folder's marker, or None without one; a marker that is not ours raises ValueError saying why."""
    path = Path(folder) / MARKER
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{MARKER} is not a plain file")
    try:
        with open(path, "rb") as file:
            marker = json.loads(file.read(MARKER_MAX_BYTES + 1))  # a planted huge one fails to parse
    except (OSError, ValueError, RecursionError) as e:
        raise ValueError(f"{MARKER} is unreadable ({type(e).__name__})") from None
    if (not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT
            or not isinstance(marker.get("command"), str) or len(marker["command"]) > 200
            or not isinstance(marker.get("wrote"), list)
            or not all(isinstance(name, str) and "/" not in name for name in marker["wrote"])):
        raise ValueError(f"{MARKER} is not a {MARKER_FORMAT} marker")
    return marker


def claim_output_folder(path, command: str, force: bool, what: str = "--output", writes: Iterable[str] = (),
                        legacy: Callable[[Path], bool] | None = None, write: bool = True,
                        conflict: str | None = None) -> OutputFolder:
    """Check `path` by the module's rule, then create it and write the marker (the first thing written there).

    command: who writes (`pipeline.prepare`, ...); the marker of another command is refused.
    writes: top-level names or fnmatch patterns of what the command writes; the existing entries matching them are
        what `--force` says it replaces, and in a marked folder any of them the marker does not list is refused.
    legacy: recognises a folder an older version of this command wrote without a marker; its entries matching
        `writes` count as the command's own.
    write: False checks only (nothing is written until the caller's first `record`, e.g. after its input loaded).
    conflict: the caller's own reason to refuse even its own folder (prepare: shards of another tokenizer); refused
        like the others, and with --force everything matching `writes` is said to be replaced.
    Raises OutputFolderError with one line naming `what` and the folder.
    """
    path, writes = Path(path), tuple(writes)
    if path.exists() and not path.is_dir():
        raise OutputFolderError(f"{what} {path}: exists and is not a folder")
    try:
        held = {p.name for p in path.iterdir()} - {MARKER} if path.is_dir() else set()
    except OSError as e:
        raise OutputFolderError(f"{what} {path}: cannot be listed ({e.strerror or e})") from None
    ours = {name for name in held if any(fnmatchcase(name, pattern) for pattern in writes)}
    override = f"add --force to write into it (replacing {_listing(ours) or 'none of its files'})"
    refusal, owned = None, set()
    try:
        marker = read_marker(path) if path.is_dir() else None
    except ValueError as e:
        marker, refusal = None, f"{what} {path}: its {e}; give another folder, or {override}"
    if marker is not None and marker["command"] != command:
        refusal = (f"{what} {path} was written by {marker['command']}, not {command}; give another folder, "
                   f"or {override}")
    elif marker is not None:
        owned = set(marker["wrote"])
        foreign = ours - owned
        if foreign:
            refusal = (f"{what} {path} holds {_listing(foreign)}, which {command} did not write; move them away, "
                       f"or add --force to replace them")
    elif held and refusal is None:
        if legacy is not None and legacy(path):
            owned = ours  # written by an older version, before markers
        else:
            refusal = (f"{what} {path} is not empty and {command} did not write it (it holds {_listing(held)}); "
                       f"give a new or empty folder, or {override}")
    if conflict is not None:
        refusal, owned = conflict, set()
    if refusal is not None:
        if not force:
            raise OutputFolderError(refusal)
        replaced = ours - owned
        print(f"--force: {command} writes into {path}, replacing "
              f"{_listing(replaced) if replaced else 'none of the files it holds'}", file=sys.stderr, flush=True)
        owned |= ours
    folder = OutputFolder(path, command, what, owned)
    if write:
        folder.record()
    return folder
