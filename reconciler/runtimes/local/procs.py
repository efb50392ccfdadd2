"""Worker processes: start one, tell whether a recorded pid is still that worker, stop it.

A pid alone is not an identity (pids are reused), so a worker is recognised
by pid + its start time in /proc/PID/stat + its command line naming the
replica id. That is what lets a restarted agent adopt live workers safely.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

WORKER_SCRIPT = Path(__file__).with_name("worker.py")


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].startswith("Z")


def is_worker(pid: int | None, proc_start: int | None, replica_id: int) -> bool:
    """Is `pid` alive and still the worker of `replica_id`?"""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process now: not ours
    if _zombie(pid):
        reap(pid)
        return False
    if proc_start is not None and start_time(pid) not in (None, proc_start):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid
    return b"--replica" in cmdline and str(replica_id).encode() in cmdline


def reap(pid: int) -> None:
    """Collect a dead child of ours so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


GPU_VARIABLE = "CUDA_VISIBLE_DEVICES"
PRIVATE_PREFIXES = ("RECONCILER_", "GIT_")  # the reconciler's own settings and credentials
PRIVATE_NAMES = ("KUBECONFIG",)


def worker_env(devices: str | None) -> dict[str, str]:
    """A worker's environment: this process's, without the reconciler's own variables
    (the webhook secret, Git credentials, kubeconfig: algorithm code must not read them;
    a worker takes its settings as arguments), with CUDA_VISIBLE_DEVICES set to its GPUs
    ("": it sees none, whatever this process may see; None: as this process has it)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(PRIVATE_PREFIXES) and name not in PRIVATE_NAMES}
    if devices is not None:
        env[GPU_VARIABLE] = devices
    return env


def spawn(args: list[str], log_path: Path,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a worker in its own session (a Ctrl-C on the terminal must not reach it),
    its stdout and stderr appended to `log_path`; `env` replaces the environment."""
    for directory in (log_path.parent.parent, log_path.parent):  # STATE/logs, STATE/logs/POOL
        if directory.is_symlink():
            raise OSError(f"{directory} is a symbolic link (remove it)")
        directory.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: a symlink planted as the log would have the worker append to its target
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                     | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(f"{log_path} is a symbolic link (remove it)") from None
        raise
    with open(fd, "ab") as log:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{log_path} is not a regular file (remove it)")
        return subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), *args], stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            env=env)


def send(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
