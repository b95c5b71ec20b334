"""`gptstack COMMAND [options]`: one command for every entry point of the project.

    gptstack prepare --corpus sample --output data/sample
    gptstack train --config tiny-cpu --data data/sample --run-dir runs/tiny
    gptstack sample --checkpoint runs/tiny --prompt "The history of"

Each subcommand hands the rest of the command line, unchanged, to the `main(argv)` of the module that
`python -m MODULE` runs, so both spellings take the same options and behave the same. Modules are imported only
when their command runs: `gptstack --help` does not pay for importing torch.
"""
import importlib
import sys

from gptstack import __version__

# name -> (module whose main(argv) runs it, one line for the command list). The order is a job's order.
# `python -m` spells some differently: pipeline.clean runs pipeline/clean/__main__.py, model.chat
# model/chat/__main__.py.
PYTHON_M = {"clean": "pipeline.clean", "chat": "model.chat", "eval": "model.eval"}
COMMANDS = {
    "prepare": ("pipeline.prepare", "tokenize a corpus into uint16 shards + manifest.json"),
    "clean": ("pipeline.clean.run", "clean WARC crawls or text into jsonl with a report, no tokenization"),
    "tokenizer": ("pipeline.tokenizer.cli", "train a BPE tokenizer folder, or check and show one"),
    "inspect": ("pipeline.inspect", "verify a shard folder's checksums and read its first tokens"),
    "adopt": ("pipeline.adopt", "write manifest.json for a folder of llm.c / modded-nanogpt shards"),
    "train": ("model.train", "pretrain a GPT on a shard folder with DeepSpeed ZeRO"),
    "sft": ("model.sft", "fine-tune a pretrained checkpoint on conversations (ChatML, full or LoRA)"),
    "sample": ("model.sample", "continue a prompt with a trained checkpoint"),
    "chat": ("model.chat.cli", "talk to a model in the terminal, replies streamed, KV cache kept across turns"),
    "serve": ("model.serve", "an OpenAI-compatible HTTP server (/v1/chat/completions) on 127.0.0.1"),
    "eval": ("model.eval.cli", "score a run, checkpoint or HF folder on offline benchmark tasks (CORE-like)"),
    "convert": ("model.convert", "convert weights to or from Hugging Face transformers' GPT-2"),
    "checkpoint": ("model.checkpoint.manager", "questions about a run's checkpoints (for job scripts)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: gptstack COMMAND [options]   (gptstack COMMAND --help for a command's options)", "",
             "commands:"]
    lines += [f"  {name:{width}}  {summary}  (= python -m {PYTHON_M.get(name, module)})"
              for name, (module, summary) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help  show this message", "  --version   print the version", "",
              "examples:", "  gptstack prepare --corpus sample --output data/sample",
              "  gptstack train --config tiny-cpu --data data/sample --run-dir runs/tiny",
              "  gptstack convert --checkpoint runs/tiny --to-hf hf/tiny"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"gptstack {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    # `--version` on each command, answered here so no command's parser needs it (and no heavy import runs).
    if "--version" in rest[: rest.index("--") if "--" in rest else None]:
        print(f"gptstack {name} {__version__}")
        return 0
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv[0] = f"gptstack {name}"  # what a command that reads sys.argv[0] should show
    code = module.main(rest)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
