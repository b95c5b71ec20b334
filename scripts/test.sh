#!/usr/bin/env bash
# Command 2 of the quick start: set up .venv, then run the whole test suite. Extra arguments go to pytest.
#   bash scripts/test.sh          every test: tests/unit/ and tests/integration/ (what CI runs, as .ci/run)
#   bash scripts/test.sh --fast   the unit tier only (tests/unit/: in-process, no launcher, no cluster), a few minutes
# The tests run on TEST_WORKERS pytest-xdist workers (default: 2, or 4 on a machine with 8 cores or more); each test
# file stays on one worker (tests/conftest.py's scheduler). TEST_WORKERS=0 runs them in this one process, in file order.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
paths=(tests)
args=()
for arg in "$@"; do
    if [ "$arg" = "--fast" ]; then paths=(tests/unit); else args+=("$arg"); fi
done
source scripts/setup_env.sh
workers=${TEST_WORKERS:-$(( $(nproc) >= 8 ? 4 : 2 ))}
parallel=()
if [ "$workers" != 0 ]; then parallel=(-n "$workers"); fi  # scheduled file by file: tests/conftest.py
python -m pytest "${paths[@]}" ${parallel[@]+"${parallel[@]}"} ${args[@]+"${args[@]}"}
