"""`python -m pipeline.tokenizer train|show` (pipeline/tokenizer/cli.py)."""
from pipeline.tokenizer.cli import main

main()
