#!/bin/bash
# Prepare a corpus on several nodes: a Ray cluster inside one Slurm allocation runs `pipeline.prepare --executor ray`.
#
#   sbatch slurm/prepare.sh --corpus fineweb --subset sample-10BT --output data/fineweb        # 4 nodes (below)
#   sbatch --nodes=16 --time=12:00:00 slurm/prepare.sh --corpus commoncrawl --input 's3://...'  # override #SBATCH
#
# Everything after the script name goes to `python -m pipeline.prepare` (see its --help). The output folder and
# the inputs must be on a filesystem all nodes share. Resubmitting the same command after a failure, a time limit
# or a cancellation resumes: finished tasks are skipped.
#
# What it does (the pattern of Ray's Slurm guide): a Ray head on the first node of the allocation, one Ray worker
# per other node (one `srun` per node), a wait until every node has joined, then prepare on the head node; a trap
# stops Ray when prepare ends or the job is cancelled.
#
# Security: an open Ray dashboard / job-submission API lets anyone who reaches it run code on your nodes
# (ShadowRay, CVE-2023-48022). Here the dashboard, and with it the job-submission API, is OFF (Ray still runs a
# headless dashboard process for usage statistics: a metrics endpoint, no web UI, no job API), and every Ray
# process requires a token made for this job (RAY_AUTH_MODE=token; only processes of this job know it). On one
# node (--nodes=1) Ray runs on 127.0.0.1, and then every one of its servers listens on loopback alone. On several
# nodes its internal servers (GCS, raylet, object manager, workers, agents, metrics) listen on all interfaces
# whatever the options: keep the nodes on a private network, as any cluster's compute nodes are, or fix their
# ports with RAY_START_ARGS (extra `ray start` options for every node) and firewall them: docs/clusters.md,
# "Which ports are open". To look at
# the dashboard, submit with RAY_DASHBOARD=1: it then listens on 127.0.0.1:8265 of the head node only; reach it with
# an SSH tunnel from your machine (the head node's name is printed below):
#     ssh -N -L 8265:127.0.0.1:8265 -J <login node> <head node>      then open http://localhost:8265
#
#SBATCH --job-name=gpt-prepare
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=32
#SBATCH --mem=0
#SBATCH --time=24:00:00
#SBATCH --output=logs/%x-%j.out

set -uo pipefail

say() { echo "[prepare.sh $(date -u +%H:%M:%S) job ${SLURM_JOB_ID:-?}] $*"; }
fail() { say "error: $*"; exit 2; }

cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}" || fail "cannot enter the submit folder ${SLURM_SUBMIT_DIR:-}"
[ -n "${SLURM_JOB_ID:-}" ] || fail "not inside a Slurm job: submit with sbatch slurm/prepare.sh [prepare options]"

VENV=${VENV:-.venv}
# shellcheck disable=SC1091
[ -f "$VENV/bin/activate" ] && source "$VENV/bin/activate"
command -v ray >/dev/null || fail "no ray on PATH (create .venv with scripts/setup_env.sh or set VENV)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# A token only this job knows: every Ray process started below inherits it through srun's environment.
RAY_AUTH_TOKEN=$(python -c 'import secrets; print(secrets.token_hex(32))') || fail "cannot make a Ray token"
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN RAY_USAGE_STATS_ENABLED=0
RAY_PORT=${RAY_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
CPUS=${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}
# Ray's sockets live here, per node (node-local /tmp on a real cluster; per node name when nodes share a machine).
# Keep it short: Ray's socket paths below it must stay under 108 bytes.
RAY_TMP=${RAY_TMP:-/tmp/ray-$SLURM_JOB_ID}

# The address Slurm itself reaches a node at (NodeAddr), as an IP: Ray must bind to it, not to a name.
node_ip() {
    local addr
    addr=$(scontrol show node "$1" 2>/dev/null | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)
    addr=${addr:-$1}
    if [[ ! $addr =~ ^[0-9.]+$ ]]; then addr=$(getent ahostsv4 "$addr" | awk 'NR == 1 {print $1}'); fi
    echo "$addr"
}
mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
HEAD_NODE=${NODES[0]}
if [ "${#NODES[@]}" = 1 ]; then
    # One node: nothing needs reaching from outside. Ray listens on loopback alone when its node address is
    # 127.0.0.1 (any other address: GCS, raylet, workers and agents listen on every interface).
    export RAY_NODE_IP=127.0.0.1
    HEAD_IP=$RAY_NODE_IP
else
    HEAD_IP=$(node_ip "$HEAD_NODE")
fi
read -r -d "" -a RAY_EXTRA <<< "${RAY_START_ARGS:-}" || true  # e.g. fixed ports to firewall (docs/clusters.md)
[ -n "$HEAD_IP" ] || fail "cannot find the address of node $HEAD_NODE"
say "Ray head on $HEAD_NODE ($HEAD_IP:$RAY_PORT), ${#NODES[@]} node(s) x $CPUS CPUs | prepare $*"

DASHBOARD=(--include-dashboard=false)
if [ "${RAY_DASHBOARD:-0}" = 1 ]; then
    DASHBOARD=(--include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port=8265)
    say "dashboard on 127.0.0.1:8265 of $HEAD_NODE: ssh -N -L 8265:127.0.0.1:8265 -J <login node> $HEAD_NODE"
fi

# ---- stop Ray whatever happens ----------------------------------------------------------------------------------
ray_steps=()
prepare_pid=""
stop_ray() {
    [ -n "$prepare_pid" ] && kill -TERM "$prepare_pid" 2>/dev/null
    for pid in "${ray_steps[@]}"; do kill -TERM "$pid" 2>/dev/null; done  # srun passes it on to `ray start --block`
    for pid in "${ray_steps[@]}"; do wait "$pid" 2>/dev/null; done
}
on_signal() { say "caught SIG$1: stopping prepare and Ray (the same command resumes)"; stop_ray; exit 143; }
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
trap 'on_signal USR1' USR1

# One srun step per node, each `ray start --block` (it lives as long as the step; killing the step stops the node).
start_node() {  # node, extra ray start options...
    local node=$1; shift
    # (the node address is looked up on that node: NodeAddr of $SLURMD_NODENAME; 127.0.0.1 in a one-node job)
    srun --nodes=1 --ntasks=1 --overlap -w "$node" --kill-on-bad-exit=0 bash -c '
        ip=${RAY_NODE_IP:-$(scontrol show node "$SLURMD_NODENAME" | grep -o "NodeAddr=[^ ]*" | cut -d= -f2)}
        [[ $ip =~ ^[0-9.]+$ ]] || ip=$(getent ahostsv4 "${ip:-$SLURMD_NODENAME}" | awk "NR == 1 {print \$1}")
        exec ray start --block --node-ip-address "$ip" --temp-dir "$0/$SLURMD_NODENAME" "$@"' \
        "$RAY_TMP" --num-cpus "$CPUS" --disable-usage-stats ${RAY_EXTRA[@]+"${RAY_EXTRA[@]}"} "$@" &
    ray_steps+=($!)
}
start_node "$HEAD_NODE" --head --port "$RAY_PORT" "${DASHBOARD[@]}"

# Wait for the head, then start the workers, then wait until all have joined (or one of them died).
wait_nodes() {  # count, seconds
    python - "$HEAD_IP:$RAY_PORT" "$1" "$2" "${ray_steps[@]}" <<'EOF'
import socket, sys, time
address, want, seconds, steps = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
host, port = address.rsplit(":", 1)
deadline = time.time() + seconds

def check_steps():  # an `srun ray start` that ended (exited, or a zombie) will never join
    for pid in steps:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "gone"
        if state in ("Z", "X", "gone"):
            sys.exit(f"a Ray node (srun step, pid {pid}) exited while starting; see its error above")

while True:  # the head's port first: ray.init would retry a missing head for minutes
    check_steps()
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit(f"the Ray head at {address} did not come up in {seconds:.0f} s")
        time.sleep(1)
import ray
ray.init(address=address, log_to_driver=False, configure_logging=False)
while (alive := sum(node["Alive"] for node in ray.nodes())) < want and time.time() < deadline:
    check_steps()
    time.sleep(1)
print(alive)
sys.exit(0 if alive >= want else f"only {alive} of {want} Ray nodes joined in {seconds:.0f} s")
EOF
}
joined=$(wait_nodes 1 "${RAY_START_TIMEOUT:-180}") || { stop_ray; fail "the Ray head did not start (see above)"; }
for node in "${NODES[@]:1}"; do start_node "$node" --address "$HEAD_IP:$RAY_PORT"; done
joined=$(wait_nodes "${#NODES[@]}" "${RAY_START_TIMEOUT:-180}") || { stop_ray; fail "Ray workers did not join (see above)"; }
say "all $joined Ray node(s) joined; running pipeline.prepare --executor ray"

# ---- prepare (on this, the head node); a trap runs only while bash waits, hence & and wait --------------------
python -m pipeline.prepare --executor ray --ray-address "$HEAD_IP:$RAY_PORT" "$@" &
prepare_pid=$!
wait "$prepare_pid"; rc=$?
prepare_pid=""
stop_ray
if [ "$rc" = 0 ]; then say "prepare finished; Ray stopped"; else say "error: prepare failed with exit $rc; Ray stopped (the same command resumes)"; fi
exit "$rc"
