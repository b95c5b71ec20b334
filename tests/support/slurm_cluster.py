"""A real Slurm cluster on this one machine, for tests: slurmctld plus N `slurmd -N nodeI` daemons.

Every node gets its own loopback address (127.0.100.I) and port. Slurm's daemons and srun listen on every
interface, so they, their jobs and our client commands all run inside a network namespace of our own whose only
interface is loopback: nothing can listen on or talk to any address outside 127.0.0.0/8. The cluster installs Debian's packages when they are missing (root only), starts what it needs and,
on stop(), stops exactly the processes it started, by process id.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.support.loopback_netns import LoopbackNetns

PACKAGES = {"slurmctld": "slurmctld", "slurmd": "slurmd", "sbatch": "slurm-client", "munged": "munge",
            "nsenter": "util-linux", "ip": "iproute2"}
CTLD_PORT = 16817


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (PID 1 here does not reap) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    if not _pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


class LocalSlurm:
    def __init__(self, workdir: Path, nodes: int = 2, cpus: int | None = None):
        self.dir = Path(workdir)
        self.nodes = [f"node{i}" for i in range(1, nodes + 1)]
        self.cpus = cpus or os.cpu_count() or 2
        self.conf = self.dir / "etc" / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.netns = LoopbackNetns(f"gptstack-slurm-{os.getpid()}",
                                   tuple(f"127.0.100.{i}" for i in range(1, nodes + 1)))
        self._started_pids: list[int] = []
        self._munged_pid: int | None = None

    def in_netns(self, cmd: list[str]) -> list[str]:
        return self.netns.wrap(cmd)

    # ---- set-up ---------------------------------------------------------------------------------------
    def install(self) -> None:
        missing = sorted({pkg for cmd, pkg in PACKAGES.items()
                          if shutil.which(cmd) is None and not Path(f"/usr/sbin/{cmd}").exists()})
        if not missing:
            return
        if os.geteuid() != 0:
            raise RuntimeError(f"Slurm packages {missing} are missing and installing them needs root")
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt_env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=apt_env, capture_output=True)

    def _munge_works(self) -> bool:
        munge = subprocess.run(["munge", "-n"], capture_output=True, stdin=subprocess.DEVNULL)
        if munge.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=munge.stdout, capture_output=True).returncode == 0

    def _start_munge(self) -> None:
        if self._munge_works():
            return
        key = Path("/etc/munge/munge.key")
        if not key.exists() or key.stat().st_size == 0:
            key.write_bytes(os.urandom(1024))
            shutil.chown(key, "munge", "munge")
            key.chmod(0o600)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
        for _ in range(100):
            if self._munge_works():
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("munged did not come up")
        self._munged_pid = int(Path("/run/munge/munged.pid").read_text())

    def _write_config(self) -> None:
        for sub in ("etc", "log", "run", "state/ctld"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        d = self.dir
        lines = [
            "ClusterName=gptstack-test",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={CTLD_PORT}",
            "SlurmUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # a requeued job may start again only after cred_expire seconds (default 120)
            "AuthInfo=cred_expire=10",
            "MpiDefault=none",
            # pgid tracking: linuxproc leaks orphaned children of the batch script
            "ProctrackType=proctrack/pgid",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={d}/log/jobcomp.log",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            "KillWait=10",
            "MailProg=/bin/true",
            "SchedulerParameters=bf_interval=2,sched_interval=2",
            # deliver --signal=B:USR1@N to the batch shell on preemption too
            "SlurmctldParameters=preempt_send_user_signal",
            f"StateSaveLocation={d}/state/ctld",
            f"SlurmdSpoolDir={d}/state/%n",
            f"SlurmctldPidFile={d}/run/slurmctld.pid",
            f"SlurmdPidFile={d}/run/slurmd-%n.pid",
            f"SlurmctldLogFile={d}/log/slurmctld.log",
            f"SlurmdLogFile={d}/log/slurmd-%n.log",
        ]
        for i, node in enumerate(self.nodes, start=1):
            lines.append(f"NodeName={node} NodeHostname=localhost NodeAddr=127.0.100.{i} Port={17100 + i} "
                         f"CPUs={self.cpus} RealMemory={mem_mb} State=UNKNOWN")
        lines.append("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> "LocalSlurm":
        self.install()
        self._start_munge()
        self._write_config()
        self.netns.create()
        subprocess.run(self.in_netns(["slurmctld", "-f", str(self.conf)]), check=True, env=self.env)
        self._started_pids.append(self._wait_pid(self.dir / "run" / "slurmctld.pid"))
        for node in self.nodes:
            (self.dir / "state" / node).mkdir(parents=True, exist_ok=True)
            subprocess.run(self.in_netns(["slurmd", "-N", node, "-f", str(self.conf)]), check=True, env=self.env)
            self._started_pids.append(self._wait_pid(self.dir / "run" / f"slurmd-{node}.pid"))
        self._wait_nodes_idle()
        return self

    def _wait_pid(self, pid_file: Path, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid_file.exists() and pid_file.read_text().strip():
                return int(pid_file.read_text())
            time.sleep(0.1)
        raise RuntimeError(f"{pid_file} never appeared; see {self.dir / 'log'}")

    def _wait_nodes_idle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False).stdout
            idle = {line.split()[0] for line in out.splitlines() if line.split()[1:] == ["idle"]}
            if idle >= set(self.nodes):
                return
            time.sleep(0.5)
        raise RuntimeError(f"Slurm nodes did not become idle: {out!r}; logs in {self.dir / 'log'}")

    # ---- use ------------------------------------------------------------------------------------------
    def run(self, *cmd: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.in_netns(list(cmd)), capture_output=True, text=True, check=check,
                              env={**self.env, **(env or {})})

    def sbatch(self, *args: str, env: dict | None = None) -> int:
        out = self.run("sbatch", "--parsable", *args, env=env).stdout
        return int(out.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as a dict ({} once the controller forgot the job)."""
        res = self.run("scontrol", "show", "job", "-o", str(job_id), check=False)
        if res.returncode != 0:
            return {}
        return dict(field.split("=", 1) for field in res.stdout.split() if "=" in field)

    def wait_state(self, job_id: int, states: set[str], timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        info: dict[str, str] = {}
        while time.monotonic() < deadline:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} did not reach {states} in {timeout}s; last: {info.get('JobState')}")

    # ---- tear-down ------------------------------------------------------------------------------------
    def stop(self) -> None:
        self.run("scancel", "--user", "root", check=False)
        time.sleep(1)
        for pid in reversed(self._started_pids):
            _kill_and_wait(pid)
        self._kill_job_leftovers()
        if self._munged_pid:
            _kill_and_wait(self._munged_pid)
        self.netns.delete()

    def _kill_job_leftovers(self) -> None:
        """Processes of our jobs that escaped process tracking carry our SLURM_CONF and a SLURM_JOB_ID."""
        marker = f"SLURM_CONF={self.conf}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in environ and any(e.startswith(b"SLURM_JOB_ID=") for e in environ):
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass
