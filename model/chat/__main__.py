"""python -m model.chat: the `gptstack chat` command (model/chat/cli.py)."""
from model.chat.cli import main

main()
