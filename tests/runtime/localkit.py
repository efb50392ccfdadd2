"""Shared helpers for tests of the local runtime, the apply executor and its CLI.

Real parts only: a real state directory, a real algorithm module and model
file written by the test, real worker processes. `workers_of(state_dir)`
finds every worker process of a state by its command line, so a test can
prove that nothing was left running.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler.plan.plans import Action, Op, Plan
from reconciler.states import ResourceKind, WarmPool, pool_id

ALGORITHM = '''
import json, os

def load(path):
    with open(path) as handle:
        return json.load(handle)

def apply(input, model):
    return {"sum": sum(input.get("values", [])) * model["factor"], "model": model["name"],
            "pid": os.getpid()}
'''


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; return its value. No fixed sleeps in tests."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Site:
    """A config dir with src/ and data/, and a state dir, all under tmp_path."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def src(self) -> Path:
        return self.root / "src"

    def write_model(self, name: str = "m1.json", factor: int = 1) -> str:
        path = self.data / "acme" / "models" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"name": name, "factor": factor}))
        return sha256(path)

    def write_code(self, module: str = "adder", text: str = ALGORITHM) -> None:
        self.src.mkdir(parents=True, exist_ok=True)
        (self.src / f"{module}.py").write_text(text)


def make_site(root: Path) -> Site:
    site = Site(root)
    site.write_code()
    site.write_model()
    return site


def make_pool(site: Site, *, caller: str = "alice", commit: str = "a" * 40,
              replicas: int = 1, model: str = "m1.json", name: str = "adder",
              version: str | None = "1.0.0", **extra: Any) -> WarmPool:
    digest = extra.pop("model_digest", None) or sha256(site.data / "acme" / "models" / model)
    pool = WarmPool(id=pool_id(caller, "acme", name, commit), caller=caller, owner="acme",
                    name=name, commit=commit, version=version, replicas=replicas,
                    processor="cpu", cpu="100m", memory="64Mi", gpu=0,
                    image="registry.example/acme/adder", entrypoint="adder:apply",
                    model_path=f"data://acme/models/{model}", model_digest=digest)
    return replace(pool, **extra)


def create(pool: WarmPool, **kw: Any) -> Action:
    return Action(Op.CREATE, ResourceKind.WARM_POOL, pool.id, after=pool, **kw)


def change(op: Op, before: WarmPool, after: WarmPool, **kw: Any) -> Action:
    return Action(op, ResourceKind.WARM_POOL, after.id, before=before, after=after, **kw)


def delete(pool: WarmPool, **kw: Any) -> Action:
    return Action(Op.DELETE, ResourceKind.WARM_POOL, pool.id, before=pool, **kw)


def plan_of(*actions: Action, fingerprint: str = "fp-test") -> Plan:
    return Plan(runtime="local", fingerprint=fingerprint, actions=tuple(actions))


def workers_of(state_dir: Path) -> list[int]:
    """Pids of live worker processes reporting into this state's database."""
    marker = str(state_dir / "state.db").encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "stat").read_text()
        except OSError:
            continue
        if marker in cmdline and b"worker" in cmdline and ") Z" not in status:
            pids.append(int(entry.name))
    return pids


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def invoke(port: int, payload: Any, timeout: float = 5.0) -> Any:
    from urllib.request import Request, urlopen

    request = Request(f"http://127.0.0.1:{port}/invoke", data=json.dumps(payload).encode(),
                      headers={"Content-Type": "application/json"}, method="POST")
    with urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@contextmanager
def standalone_agent(state_dir: Path, env: dict[str, str] | None = None,
                     stderr: Any = None) -> Iterator[subprocess.Popen[bytes]]:
    """`reconciler agent` on a state, in its own process, killed if the test leaves it
    running (its workers are the test fixture's to check)."""
    process = subprocess.Popen([sys.executable, "-m", "reconciler", "agent", "--state",
                                str(state_dir), "--poll-interval", "0.1s", "--grace", "2s"],
                               env=env, stderr=stderr)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
