"""Code is part of a version (issue 10 item 4).

A commit that changed only the algorithm's code under the code root was
"unchanged": warm replicas kept the old code while restarted ones ran the
new. The digest of the code an entrypoint loads is now part of its pools:
such a commit is a rolling reload, and the local agent replaces the
replicas one at a time, never below the reserved ready count. On Kubernetes
there is no code root (the image is the code): the digest stays empty.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from configkit import write_config
from localkit import ALGORITHM, invoke, kill_all, wait_for, workers_of
from relkit import clean, cli

from reconciler.config.loader import load_config
from reconciler.desired import compile_config
from reconciler.runtimes.local.agent import Agent
from reconciler.runtimes.local.runtime import LocalRuntime

POOL = "alice.acme.adder.aaaaaaaaaaaa"
NEW_CODE = ALGORITHM.replace('"pid": os.getpid()}', '"pid": os.getpid(), "code": 2}')


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config", replicas=2)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    kill_all(workers_of(state))


@pytest.mark.slow
def test_a_code_only_change_is_a_reload(config: Path, state: Path) -> None:
    assert cli("apply", str(config), "--state", str(state), "--auto-approve").returncode == 0
    (config / "src" / "adder.py").write_text(NEW_CODE)
    done = cli("plan", str(config), "--state", str(state), "--detailed-exitcode")
    assert done.returncode == 2, clean(done)
    assert f"~ reload WarmPool {POOL}" in done.stdout
    assert "code_digest: sha256:" in done.stdout


def test_on_kubernetes_the_image_is_the_code(config: Path) -> None:
    pools = compile_config(load_config(config, code_digests=False)).pools
    assert [p.code_digest for p in pools] == [""]
    assert "code_digest" not in pools[0].to_json()  # annotations and plans as before
    local = compile_config(load_config(config)).pools
    assert local[0].code_digest.startswith("sha256:")


def answer(port: int) -> dict[str, object]:
    """The algorithm's output from a worker (the worker may wrap it in {"output": ...})."""
    reply = invoke(port, {"values": [1]})
    return reply.get("output", reply) if isinstance(reply, dict) else reply


def ready_replicas(db_path: Path, stop: threading.Event, samples: list[int]) -> None:
    db = sqlite3.connect(db_path)
    while not stop.is_set():
        with db:
            samples.append(db.execute("SELECT COUNT(*) FROM replicas WHERE pool_id = ? AND "
                                      "state = 'ready'", (POOL,)).fetchone()[0])
        stop.wait(0.01)
    db.close()


@pytest.mark.slow
def test_the_agent_rolls_the_new_code_in_one_replica_at_a_time(config: Path,
                                                               state: Path) -> None:
    assert cli("apply", str(config), "--state", str(state), "--auto-approve").returncode == 0
    agent = Agent(state, poll_interval=0.1, grace=2.0)
    agent.start()
    runtime = LocalRuntime(state)
    samples: list[int] = []
    stop = threading.Event()
    try:
        runtime.wait_ready(POOL, 2, timeout=20)
        old = set(workers_of(state))
        assert "code" not in answer(runtime.ready_endpoints(POOL)[0])
        (config / "src" / "adder.py").write_text(NEW_CODE)
        sampler = threading.Thread(target=ready_replicas,
                                   args=(state / "state.db", stop, samples))
        sampler.start()
        done = cli("apply", str(config), "--state", str(state), "--auto-approve")
        assert f"configured WarmPool {POOL}" in clean(done)
        runtime.wait_ready(POOL, 2, timeout=30)
        wait_for(lambda: not old & set(workers_of(state)), message="old replicas stopped")
        stop.set()
        sampler.join()
        ports = runtime.ready_endpoints(POOL)
        assert len(ports) == 2
        answers = [answer(port) for port in ports]
        assert all(a.get("code") == 2 for a in answers), answers
        assert samples and min(samples) >= 2, "the ready count dipped during the reload"
    finally:
        stop.set()
        runtime.close()
        agent.stop()
