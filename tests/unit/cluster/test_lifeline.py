"""Which processes watch their launcher (cluster/lifeline.py): ranks of torchrun and of the deepspeed launcher only."""
import threading

from cluster.lifeline import launcher_of, watch_launcher


def test_the_launchers_are_told_apart_by_what_they_set_in_their_workers():
    assert launcher_of({"TORCHELASTIC_RUN_ID": "none", "RANK": "0", "WORLD_SIZE": "2"}) == "torchrun"
    assert launcher_of({"CROSS_RANK": "0", "LOCAL_SIZE": "2", "RANK": "1", "WORLD_SIZE": "2"}) == "deepspeed"
    # plain python, srun's tasks, and a user's own RANK/WORLD_SIZE: no launcher process to outlive
    assert launcher_of({}) is None
    assert launcher_of({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}) is None
    assert launcher_of({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}) is None


def test_a_process_without_a_launcher_starts_no_watcher():
    assert watch_launcher({"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert not [t for t in threading.enumerate() if t.name == "gptstack-launcher-lifeline"]
