"""cluster/env.py: launcher environments -> torch.distributed rank/world/local rank/rendezvous."""
import pytest

from cluster.env import (SLURM_PORT_BASE, SLURM_PORT_SPAN, ClusterEnvError, expand_hostlist, resolve_dist_env,
                         slurm_master_port)


def test_torchrun_variables():
    env = resolve_dist_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29512"})
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (3, 8, 1, 2)
    assert (env.master_addr, env.master_port, env.launcher) == ("127.0.0.1", 29512, "torchrun/deepspeed")
    assert env.torch_environ() == {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29512"}


def test_slurm_task_derives_master_from_nodelist_and_job_id():
    environ = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": "4",
               "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "123456"}
    env = resolve_dist_env(environ)
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (5, 8, 1, 4)
    assert env.master_addr == "gpu07"
    assert env.master_port == SLURM_PORT_BASE + 123456 % SLURM_PORT_SPAN
    assert env.launcher == "slurm"
    # every task of the job computes the same rendezvous
    other = resolve_dist_env(dict(environ, SLURM_PROCID="0", SLURM_LOCALID="0"))
    assert (other.master_addr, other.master_port) == (env.master_addr, env.master_port)
    applied = {}
    env.apply(applied)
    assert applied["RANK"] == "5" and applied["MASTER_ADDR"] == "gpu07" and applied["WORLD_SIZE"] == "8"


def test_slurm_respects_explicit_master_and_tasks_per_node_forms():
    env = resolve_dist_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_LOCALID": "0",
                            "SLURM_TASKS_PER_NODE": "2(x2)", "SLURM_JOB_NODELIST": "a,b",
                            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "23456"})
    assert (env.master_addr, env.master_port, env.local_world_size) == ("127.0.0.1", 23456, 2)


def test_torch_variables_win_over_slurm():
    # torchrun started inside an srun step: torchrun's workers are the group.
    env = resolve_dist_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_NODELIST": "n1",
                            "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                            "MASTER_PORT": "29500"})
    assert (env.rank, env.world_size, env.launcher) == (1, 2, "torchrun/deepspeed")


def test_no_launcher_is_a_single_local_process():
    env = resolve_dist_env({})
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.launcher) == (0, 1, 0, "127.0.0.1", "single")


@pytest.mark.parametrize("hostlist, hosts", [
    ("node1", ["node1"]),
    ("gpu[01-03,07]", ["gpu01", "gpu02", "gpu03", "gpu07"]),
    ("a[8-10],login1", ["a8", "a9", "a10", "login1"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("127.0.0.1", ["127.0.0.1"]),
])
def test_expand_hostlist(hostlist, hosts):
    assert expand_hostlist(hostlist) == hosts


def test_port_from_job_id_is_stable_and_in_range():
    ports = {slurm_master_port(str(job)) for job in range(1000, 1100)}
    assert len(ports) == 100  # neighbouring jobs on a shared node do not collide
    assert all(SLURM_PORT_BASE <= p < SLURM_PORT_BASE + SLURM_PORT_SPAN for p in ports)
    assert slurm_master_port("4242") == slurm_master_port("4242")
    assert slurm_master_port("4242_7") == slurm_master_port("42427")  # array job ids: digits only


@pytest.mark.parametrize("environ, message", [
    ({"RANK": "2", "WORLD_SIZE": "2"}, "outside world size"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "not an integer"),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, "SLURM_JOB_NODELIST"),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "gpu[3-1]"}, "bad range"),
    ({"RANK": "0", "WORLD_SIZE": "1", "MASTER_PORT": "70000"}, "not a valid TCP port"),
])
def test_inconsistent_environments_are_one_line_errors(environ, message):
    with pytest.raises(ClusterEnvError, match=message) as caught:
        resolve_dist_env(environ)
    assert "\n" not in str(caught.value)
