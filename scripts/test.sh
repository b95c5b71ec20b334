#!/usr/bin/env bash
# Command 2 of the quick start: set up .venv, then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
python -m pytest tests "$@"
