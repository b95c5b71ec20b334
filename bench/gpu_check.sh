#!/usr/bin/env bash
# The prepared GPU check (issue 23): one command on one GPU, under 8 minutes on an H100. For GPT-2 124M and qwen3
# 125M through model.train's trainer: bf16 tokens/s, MFU and peak memory; torch.compile on and off; ZeRO-0 against
# ZeRO-1; AdamW against Muon step time. One markdown table, on stdout and in bench/results/gpu_check.md.
#   bash bench/gpu_check.sh                    the check (needs a CUDA GPU; without one: one error line, exit 2)
#   bash bench/gpu_check.sh --cpu-smoke        its logic at a toy size on the CPU (what the test runs)
# Other arguments go to bench/gpu_check.py (--steps, --warmup, --micro-batch, --budget-s, --out; see --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python}"
if [[ -x .venv/bin/python && -z "${VIRTUAL_ENV:-}" ]]; then PYTHON=.venv/bin/python; fi  # scripts/setup_env.sh's
SMOKE=""
for arg in "$@"; do [[ "$arg" == "--cpu-smoke" ]] && SMOKE=1; done
if [[ -z "$SMOKE" ]]; then
    if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        echo "error: bench/gpu_check.sh needs a CUDA GPU and torch sees none here (torch.cuda.is_available() is" \
             "False); bash bench/gpu_check.sh --cpu-smoke runs its logic at a toy size on the CPU" >&2
        exit 2
    fi
    export DS_ACCELERATOR="${DS_ACCELERATOR:-cuda}"
else
    export DS_ACCELERATOR=cpu
fi
# The Python side skips rows past its own budget (420 s); this is the hard stop that keeps the promise of 8 minutes.
exec timeout --kill-after=10 480 "$PYTHON" bench/gpu_check.py "$@"
