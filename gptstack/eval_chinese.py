"""C-Eval and CMMLU: readers of their published csv files, and the command that downloads them.

Neither is shipped with this project or with any PyPI package: C-Eval is CC BY-NC-SA 4.0 (its Hub card) and CMMLU
non-commercial too (CC BY-NC-SA 4.0 in its GitHub README, CC BY-NC 4.0 on its Hub card). `gptstack eval --fetch
ceval|cmmlu --to DIR` downloads the authors' zip once; the tasks `ceval` and `cmmlu` then read DIR (--data-dir, or
$GPTSTACK_EVAL_DATA, default ~/.cache/gptstack/eval) offline.

Published formats (checked against hkust-nlp/ceval and haonan-li/CMMLU):
  C-Eval  ceval-exam.zip: {dev,val,test}/<subject>_<split>.csv, header id,question,A,B,C,D,answer[,explanation];
          test has no answers, so the task is the val split (1,346 questions, 52 subjects).
  CMMLU   cmmlu_v1_0_1.zip: {dev,test}/<subject>.csv, header ,Question,A,B,C,D,Answer (the first column is an
          unnamed row index); the task is the test split (11,582 questions, 67 subjects).
Scored like the English cloze tasks: the question in a fixed Chinese frame, each option's text as the
continuation, normalised by its UTF-8 bytes; random = 0.25.
"""
from __future__ import annotations

import csv
import io
import os
import urllib.request
import zipfile
from pathlib import Path

from gptstack.errors import InputError

URLS = {
    "ceval": "https://huggingface.co/datasets/ceval/ceval-exam/resolve/main/ceval-exam.zip",
    "cmmlu": "https://huggingface.co/datasets/haonan-li/cmmlu/resolve/main/cmmlu_v1_0_1.zip",
}
SPLIT = {"ceval": "val", "cmmlu": "test"}
COLUMNS = {"ceval": ("id", "question", "A", "B", "C", "D", "answer"),
           "cmmlu": ("", "Question", "A", "B", "C", "D", "Answer")}
MAX_ZIP_BYTES = 200 * 1024 * 1024  # both zips are a few MB; refuse anything far larger


def data_root() -> Path:
    return Path(os.environ.get("GPTSTACK_EVAL_DATA") or Path.home() / ".cache" / "gptstack" / "eval")


def csv_files(task: str) -> list[Path]:
    folder = data_root() / task / SPLIT[task]
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        raise InputError(f"{folder}: no {task} csv files; the data is not shipped (non-commercial licence): "
                         f"gptstack eval --fetch {task} --to {data_root() / task}, or --data-dir DIR")
    return files


def subject_of(task: str, path: Path) -> str:
    name = path.stem
    return name[: -len("_" + SPLIT[task])] if task == "ceval" and name.endswith("_" + SPLIT[task]) else name


def read_csv_rows(task: str, path: Path) -> list[dict]:
    """The rows of one subject file, its header checked (one InputError line naming the file otherwise)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable UTF-8 csv file ({type(error).__name__})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS[task] if c and c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}: not a {task} csv file: no column {', '.join(missing)} "
                         f"(header {','.join(reader.fieldnames or [])!r})")
    rows = []
    for row in reader:
        row["subject"] = subject_of(task, path)
        rows.append(row)
    return rows


def read_row(task: str, row: dict) -> tuple[str, list[str], int]:
    """(context, choices, gold) of a row: 以下是关于<subject>的单项选择题。题目：...答案：<option text>."""
    question, answer = (row["question"], row["answer"]) if task == "ceval" else (row["Question"], row["Answer"])
    choices = [row[letter] for letter in "ABCD"]
    if answer is None or answer.strip() not in "ABCD" or not answer.strip():
        raise ValueError(f"answer {answer!r} is not one of A, B, C, D")
    subject = row["subject"].replace("_", " ")
    return f"以下是关于{subject}的单项选择题。\n题目：{question.strip()}\n答案：", choices, "ABCD".index(answer.strip())


def fetch(task: str, to: Path) -> Path:
    """Download the authors' zip and unpack it into `to` (needs the network; never run by the tests)."""
    url = URLS[task]
    to.mkdir(parents=True, exist_ok=True)
    print(f"downloading {url} (licence: non-commercial use only; see docs/evaluation.md)")
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            body = response.read(MAX_ZIP_BYTES + 1)
    except OSError as error:
        raise InputError(f"--fetch {task}: cannot download {url} ({' '.join(str(error).split())[:120]})") from None
    if len(body) > MAX_ZIP_BYTES:
        raise InputError(f"--fetch {task}: {url} is larger than {MAX_ZIP_BYTES:,} bytes; not the expected zip")
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        for member in archive.infolist():
            target = (to / member.filename).resolve()
            if not str(target).startswith(str(to.resolve())) or member.is_dir():
                continue  # a path leaving the folder is never written
            if member.filename.endswith(".csv"):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
    except zipfile.BadZipFile:
        raise InputError(f"--fetch {task}: {url} did not send a zip file") from None
    print(f"wrote {task} into {to}; evaluate with: gptstack eval --data-dir {to.parent} --suite {task} ...")
    return to
