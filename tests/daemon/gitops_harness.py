"""Helpers for the daemon and source tests: real Git repositories, a real daemon process.

Imported by tests/daemon, tests/sources and tests/e2e (the latter two add this
directory to sys.path). No mocks: repositories are made with the git binary in
temp dirs, the daemon is `python -m reconciler daemon` in a subprocess, and
it is reached over HTTP like an operator would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
REPO_ROOT = Path(__file__).resolve().parents[2]


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str = "condition",
             step: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy; its value. Fails with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class GitRepo:
    """A work tree with `main`, pushing to a bare `remote` next to it."""

    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        self.remote = root / "remote.git"
        self.work.mkdir(parents=True)
        git("init", "-q", "--bare", "-b", "main", str(self.remote), cwd=root)
        git("init", "-q", "-b", "main", cwd=self.work)
        git("remote", "add", "origin", str(self.remote), cwd=self.work)

    def write(self, rel: str, text: str) -> None:
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def remove(self, rel: str) -> None:
        git("rm", "-q", "-r", rel, cwd=self.work)

    def commit(self, message: str, *, push: bool = True, force: bool = False) -> str:
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        sha = git("rev-parse", "HEAD", cwd=self.work)
        if push:
            git("push", "-q", *(["-f"] if force else []), "origin", "main", cwd=self.work)
        return sha

    def reset_hard(self, ref: str) -> None:
        git("reset", "-q", "--hard", ref, cwd=self.work)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def pids_of_children(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc), to prove no worker is orphaned."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class DaemonProcess:
    """`reconciler daemon` in a subprocess; stop() sends SIGTERM and checks it exits 0."""

    def __init__(self, args: list[str], state: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.state = state
        self.log = state.parent / f"daemon-{os.getpid()}-{time.monotonic_ns()}.log"
        self.state.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("wb")
        full_env = {**os.environ, **GIT_ENV, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "daemon", "--state", str(state),
             "--listen", "127.0.0.1:0", *args],
            stdout=self._log_file, stderr=subprocess.STDOUT, env=full_env,
            cwd=cwd or REPO_ROOT)
        self.url = ""
        self.workers_seen: set[int] = set()

    def started(self, timeout: float = 20.0) -> DaemonProcess:
        info = self.state / "daemon.json"

        def ready() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.output()}")
            if not info.exists():
                return None
            data = json.loads(info.read_text() or "{}")
            return str(data.get("url") or "") or None

        self.url = wait_for(ready, timeout, "daemon.json")
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        return http(self.url + path)

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        data: dict[str, Any] = json.loads(body)
        self.workers_seen |= pids_of_children(self.proc.pid)
        return data

    def wait_status(self, predicate: Callable[[dict[str, Any]], Any], timeout: float,
                    what: str) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def check() -> Any:
            nonlocal last
            last = self.status()
            return last if predicate(last) else None

        try:
            return wait_for(check, timeout, what)  # type: ignore[no-any-return]
        except AssertionError:
            raise AssertionError(f"{what}: {json.dumps(last, indent=1)[:3000]}\n"
                                 f"{self.output()[-4000:]}") from None

    def post_webhook(self, body: bytes, headers: dict[str, str]) -> int:
        return http(self.url + "/webhook", data=body, headers=headers)[0]

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal, wait, and assert that no worker process outlives the daemon."""
        if self.proc.poll() is None:
            self.workers_seen |= pids_of_children(self.proc.pid)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"daemon ignored {sig}:\n{self.output()}") from None
        self._log_file.close()
        wait_for(lambda: not any(alive(p) for p in self.workers_seen), 10.0,
                 "no worker process left")
        return self.proc.returncode


MODEL = b"the\na\nof\n"
MODEL_DIGEST = "sha256:" + hashlib.sha256(MODEL).hexdigest()
WORDCOUNT = '''
import time


def load(model_path):
    if model_path.endswith("slow.txt"):
        time.sleep(60)  # a replica that never gets warm within a test
    with open(model_path, encoding="utf-8") as handle:
        return frozenset(line.strip() for line in handle if line.strip())


def apply(input, model):
    return {"words": len([w for w in str(input).split() if w not in model])}
'''


SLOW_VERSION = f"""    - commit: 8c1b3a0f2d6e4b5a9c7d1e2f3a4b5c6d7e8f9a0b
      version: 0.2.0
      visibility: public
      compiledAt: "2026-08-01T18:00:00Z"
      model: {{path: "data://erin/wc/slow.txt", digest: "{MODEL_DIGEST}"}}
"""


def write_config(root: Path, *, replicas: int = 1, cpu: str = "100m",
                 slow_version: bool = False) -> None:
    """A one-pool config: user erin reserves `replicas` warm replicas of erin/wc.
    `slow_version` adds version 0.2.0, whose replicas take a minute to warm up."""
    files = {
        "accounts.yaml": """apiVersion: reconciler/v1
kind: Account
metadata: {name: erin}
spec: {type: user}
""",
        "algorithms/wc.yaml": f"""apiVersion: reconciler/v1
kind: Algorithm
metadata: {{name: wc}}
spec:
  owner: erin
  processor: cpu
  resources: {{cpu: {cpu}, memory: 64Mi}}
  image: registry.example/erin/wc
  entrypoint: wc:apply
  versions:
    - commit: 7b09e68d7ce6b07a4c974c3bdea844e029378522
      version: 0.1.0
      visibility: public
      compiledAt: "2026-07-04T18:00:00Z"
      model: {{path: "data://erin/wc/stop.txt", digest: "{MODEL_DIGEST}"}}
""" + (SLOW_VERSION if slow_version else ""),
        "reservations/erin.yaml": f"""apiVersion: reconciler/v1
kind: Reservation
metadata: {{name: erin-wc}}
spec: {{caller: erin, algorithm: erin/wc, versionType: latest-public, replicas: {replicas}}}
""",
        "settings.yaml": """apiVersion: reconciler/v1
kind: Settings
metadata: {name: settings}
spec:
  local:
    nodes:
      - {name: local-cpu, processor: cpu, cpu: "2", memory: 2Gi, pods: 8}
""",
        "src/wc.py": WORDCOUNT,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "data" / "erin" / "wc").mkdir(parents=True, exist_ok=True)
    (root / "data" / "erin" / "wc" / "stop.txt").write_bytes(MODEL)
    (root / "data" / "erin" / "wc" / "slow.txt").write_bytes(MODEL)


def pools_ready(status: dict[str, Any], replicas: int) -> bool:
    pools = status.get("pools") or {}
    return bool(pools.get("desired") == replicas and pools.get("ready") == replicas)
