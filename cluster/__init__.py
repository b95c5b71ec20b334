"""Cluster plumbing: map whatever launched us (torchrun, the deepspeed launcher, Slurm's srun) onto torch.distributed."""
from cluster.env import DistEnv, expand_hostlist, resolve_dist_env

__all__ = ["DistEnv", "expand_hostlist", "resolve_dist_env"]
