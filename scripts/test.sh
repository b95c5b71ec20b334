#!/usr/bin/env bash
# Command 2 of the quick start: set up .venv, then run the whole test suite. Extra arguments go to pytest.
#   bash scripts/test.sh          every test: tests/unit/ and tests/integration/ (what CI runs, as .ci/run)
#   bash scripts/test.sh --fast   the unit tier only (tests/unit/: in-process, no launcher, no cluster), a few minutes
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
paths=(tests)
args=()
for arg in "$@"; do
    if [ "$arg" = "--fast" ]; then paths=(tests/unit); else args+=("$arg"); fi
done
source scripts/setup_env.sh
python -m pytest "${paths[@]}" ${args[@]+"${args[@]}"}
