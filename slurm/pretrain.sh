#!/bin/bash
# Pretrain the GPT on a Slurm cluster. Submit once; the job resumes itself after a crash, a time limit or a
# preemption until the run reaches its last step.
#
#   sbatch slurm/pretrain.sh [CONFIG] [--set key=value ...]                      # 1 node x 8 GPUs
#   sbatch --nodes=4 --time=2-00:00:00 slurm/pretrain.sh configs/gpt2-350m.yaml   # override any #SBATCH line
#   DATA=data/fineweb RUN_DIR=runs/my-run sbatch slurm/pretrain.sh                # where data and outputs go
#
# One task per GPU (srun); the trainer reads its rank from SLURM_* (cluster/env.py). Everything after CONFIG
# is passed to `python -m model.train`. The run folder (default runs/<config>-<job name>) is stable across
# requeues, so every start continues from its latest valid checkpoint.
#
# Signals: Slurm sends USR1 to this script --signal seconds before the time limit or a preemption; we pass it
# to the trainer, which finishes its step, writes a checkpoint and exits with 75; then the job requeues itself.
#
#SBATCH --job-name=gpt-pretrain
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=logs/%x-%j.out

set -uo pipefail

EXIT_STOPPED_ON_REQUEST=75   # model.train: checkpoint written on USR1/TERM, resume me
EXIT_BAD_INPUT=2             # model.train: config/data/checkpoint problem, a retry would fail the same way
MAX_FAILURES_AT_STEP=${MAX_FAILURES_AT_STEP:-3}

say() { echo "[pretrain.sh $(date -u +%H:%M:%S) job ${SLURM_JOB_ID:-?} restart ${SLURM_RESTART_COUNT:-0}] $*"; }
fail() { say "error: $*"; exit 2; }

cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}" || fail "cannot enter the submit folder ${SLURM_SUBMIT_DIR:-}"
CONFIG=${1:-configs/gpt2-124m.yaml}
[ $# -gt 0 ] && shift
[ -f "$CONFIG" ] || fail "config $CONFIG does not exist (give a file from configs/)"
[ -n "${SLURM_JOB_ID:-}" ] || fail "not inside a Slurm job: submit with sbatch slurm/pretrain.sh"

RUN_DIR=${RUN_DIR:-runs/$(basename "$CONFIG" .yaml)-${SLURM_JOB_NAME:-pretrain}}
mkdir -p "$RUN_DIR" || fail "cannot create the run folder $RUN_DIR"
TRAIN_ARGS=(--config "$CONFIG" --run-dir "$RUN_DIR" --resume auto)
[ -n "${DATA:-}" ] && TRAIN_ARGS+=(--data "$DATA")

# ---- environment ------------------------------------------------------------------------------------------
VENV=${VENV:-.venv}
# shellcheck disable=SC1091
[ -f "$VENV/bin/activate" ] && source "$VENV/bin/activate"
command -v python >/dev/null || fail "no python on PATH (create .venv with scripts/setup_env.sh or set VENV)"

# DEVICE=cpu trains over gloo on CPUs (tests, clusters without GPUs); auto picks cpu when no GPU is visible.
DEVICE=${DEVICE:-auto}
if [ "$DEVICE" = auto ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then DEVICE=cuda; else DEVICE=cpu; fi
fi
if [ "$DEVICE" = cpu ]; then
    export DS_ACCELERATOR=cpu
else
    # Fail fast on a hung collective instead of burning the allocation; overridable from the environment.
    export TORCH_NCCL_ASYNC_ERROR_HANDLING=${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}
    export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
fi
# One OpenMP thread pool per task sized to its CPUs, not to the whole node (oversubscription kills throughput).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}

# Rendezvous: the first node of the allocation, at the address Slurm itself uses to reach it, and a port
# derived from the job id (cluster/env.py) unless MASTER_PORT is set. On one node, 127.0.0.1: rank 0 then serves
# the rendezvous on loopback alone and gloo stays there too (model/engine.py, cluster/env.py).
if [ -z "${MASTER_ADDR:-}" ] && [ "${SLURM_JOB_NUM_NODES:-0}" = 1 ]; then
    export MASTER_ADDR=127.0.0.1
elif [ -z "${MASTER_ADDR:-}" ]; then
    first_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    MASTER_ADDR=$(scontrol show node "$first_node" 2>/dev/null | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)
    export MASTER_ADDR=${MASTER_ADDR:-$first_node}
fi
say "config $CONFIG | run folder $RUN_DIR | $SLURM_JOB_NUM_NODES node(s) ($SLURM_JOB_NODELIST) | ${SLURM_NTASKS:-?} task(s) | device $DEVICE | master $MASTER_ADDR"

# ---- signals: checkpoint, then requeue ----------------------------------------------------------------------
srun_pid=""
signalled=""
forward_stop() {
    signalled=$1
    say "caught SIG$1: asking the trainer to finish its step and checkpoint"
    [ -n "$srun_pid" ] && kill -USR1 "$srun_pid" 2>/dev/null
}
trap 'forward_stop USR1' USR1
trap 'forward_stop TERM' TERM

# The step of the checkpoint the next start resumes from (empty if none): model/checkpoint/manager.py decides which
# folders count, so this script and the trainer never disagree about it.
latest_step() {
    python -m model.checkpoint latest --step "$RUN_DIR"
}

# ---- train ----------------------------------------------------------------------------------------------------
# A bash trap runs only while bash waits, so srun goes to the background and we wait for it (again after each
# signal: `wait` returns early when a trapped signal arrives).
srun --kill-on-bad-exit=1 python -m model.train "${TRAIN_ARGS[@]}" "$@" &
srun_pid=$!
while true; do
    wait "$srun_pid"; rc=$?
    kill -0 "$srun_pid" 2>/dev/null || break
done
step=$(latest_step)

if [ "$rc" = 0 ]; then
    say "training finished: last checkpoint step ${step:-none} in $RUN_DIR"
    exit 0
fi
if [ "$rc" = "$EXIT_BAD_INPUT" ]; then
    say "error: the trainer refused its input (see the error line above); not requeueing"
    exit "$rc"
fi

# A crash (or a stop on request) requeues, unless the run keeps failing at the same checkpoint.
history="$RUN_DIR/slurm_failures.txt"
if [ "$rc" != "$EXIT_STOPPED_ON_REQUEST" ] && [ -z "$signalled" ]; then
    echo "${step:-0} $rc ${SLURM_RESTART_COUNT:-0}" >> "$history"
    same=$(awk -v s="${step:-0}" '$1 == s' "$history" | wc -l)
    if [ "$same" -ge "$MAX_FAILURES_AT_STEP" ]; then
        say "error: the trainer failed $same times resuming from step ${step:-0} (exit $rc); not requeueing again. Fix the cause, then resubmit (see $history)"
        exit "$rc"
    fi
    say "trainer failed with exit $rc at checkpoint step ${step:-0} (failure $same of $MAX_FAILURES_AT_STEP); requeueing"
else
    say "stopped with a checkpoint at step ${step:-?}; requeueing"
fi
scontrol requeue "$SLURM_JOB_ID" || { say "error: scontrol requeue failed"; exit 1; }
exit 0
