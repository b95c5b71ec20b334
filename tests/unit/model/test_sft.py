"""`gptstack sft`'s refusals: each bad input is one `error:` line naming the file and line (or the base), exit 2,
and the run folder is never created. In-process: every check runs before any process group or model exists."""
import json

import pytest

from model.build import build_model
from model.checkpoint.weights import save_weights
from model.gpt import GPTConfig
from model.sft import main

GOOD = {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base") / "weights"
    save_weights(build_model(GPTConfig.from_name("tiny", block_size=64)), folder)  # GPT-2 BPE, 50,257 ids
    return folder


def run_sft(tmp_path, base, lines, capsys, *extra):
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        main(["--config", "sft-tiny-cpu", "--base", str(base), "--data", str(data), "--run-dir", str(run_dir),
              "--set", "data.seq_len=64", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert not run_dir.exists()  # nothing written
    return err[0], str(data)


@pytest.mark.parametrize("bad, says", [
    ({"messages": [{"role": "user", "content": "hello?"}]}, ":3: no assistant message"),
    ({"messages": [{"role": "robot", "content": "hi"}, GOOD["messages"][1]]}, ":3: messages[0]: role 'robot'"),
    ({"messages": [{"role": "user", "content": "很长的问题 " * 40}, GOOD["messages"][1]]},
     ":3: 492 tokens, longer than the context"),
])
def test_bad_conversation_is_one_line_naming_file_and_line(tmp_path, base, capsys, bad, says):
    line, data = run_sft(tmp_path, base, [GOOD, GOOD, bad], capsys)
    assert line.startswith(f"error: {data}{says}")


def test_too_long_says_the_context(tmp_path, base, capsys):
    long = {"messages": [{"role": "user", "content": "word " * 80}, GOOD["messages"][1]]}
    line, data = run_sft(tmp_path, base, [GOOD, long], capsys)
    assert f"{data}:2: " in line and "longer than the context (data.seq_len 64 + 1)" in line


def test_base_of_another_tokenizer_is_refused(tmp_path, capsys):
    other = tmp_path / "other"
    save_weights(build_model(GPTConfig.from_name("tiny", block_size=64, vocab_size=300)), other)  # not GPT-2's
    line, _ = run_sft(tmp_path, other, [GOOD, GOOD], capsys)
    assert line == (f"error: --base {other}: the model has 300 ids but its tokenizer 'gpt2' 50,257: a checkpoint "
                    f"of another tokenizer")


def test_lora_needs_adamw(tmp_path, base, capsys):
    line, _ = run_sft(tmp_path, base, [GOOD, GOOD], capsys, "--set", "sft.lora_rank=4", "--set", "optim.name=muon")
    assert "sft.lora_rank needs optim.name=adamw" in line
