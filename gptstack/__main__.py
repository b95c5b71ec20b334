"""`python -m gptstack COMMAND ...`, the same as the `gptstack` console script."""
import sys

from gptstack.cli import main

sys.exit(main())
