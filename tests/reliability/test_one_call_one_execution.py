"""One call, one execution: a call that reached a replica is never run again elsewhere.

A replica that dies mid-call fails that call (the error says it was not retried)
and the agent replaces the replica; the next replica is tried only when a
connection could not be made at all, which is when nothing was sent.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from configkit import reconciler, write_config  # noqa: E402
from conftest_local import Local, local_fixture  # noqa: E402,F401
from localkit import (  # noqa: E402
    create,
    make_pool,
    standalone_agent,
    wait_for,
    workers_of,
)

pytestmark = pytest.mark.slow

# Every execution appends its pid to input["log"]; input["die"] kills the replica mid-call.
FATAL = '''
import json, os, signal

def load(path):
    with open(path) as handle:
        return json.load(handle)

def apply(input, model):
    with open(input["log"], "a") as handle:
        handle.write(f"{os.getpid()}\\n")
    if input.get("die"):
        os.kill(os.getpid(), signal.SIGKILL)
    return {"pid": os.getpid(), "sum": sum(input.get("values", [])) * model["factor"]}
'''
POOL = "alice.acme.adder.aaaaaaaaaaaa"


def executions(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def ready_pids(local: Local, pool_id: str) -> set[str]:
    status = local.runtime.observe().status.get(pool_id)
    return {r.id for r in status.replicas if r.state == "ready"} if status else set()


def test_a_replica_dying_mid_call_fails_the_call_once_and_is_replaced(local: Local,
                                                                      tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", replicas=2)
    (config / "src" / "adder.py").write_text(FATAL)
    assert reconciler("apply", str(config), "--state", str(local.site.state),
                      "--auto-approve").returncode == 0
    local.agent()
    local.runtime.wait_ready(POOL, 2, timeout=15)
    before = ready_pids(local, POOL)
    log = tmp_path / "executions.log"

    done = reconciler("invoke", "--as", "alice", "acme/adder",
                      json.dumps({"log": str(log), "die": True}),
                      "--state", str(local.site.state))

    assert done.returncode == 1 and done.stdout == ""
    assert "went away during the call" in done.stderr and "not retried" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(executions(log)) == 1, f"one call ran {len(executions(log))} times"
    [victim] = executions(log)
    assert victim in before
    # The other replica never saw the call, and the agent replaces the dead one.
    wait_for(lambda: len(ready_pids(local, POOL)) == 2 and victim not in ready_pids(local, POOL),
             message="the agent to replace the replica that died")
    again = reconciler("invoke", "--as", "alice", "acme/adder",
                       json.dumps({"log": str(log), "values": [2]}),
                       "--state", str(local.site.state))
    assert again.returncode == 0 and json.loads(again.stdout)["sum"] == 2
    assert len(executions(log)) == 2


def test_a_replica_that_refuses_connections_is_skipped_without_a_second_run(
        local: Local, tmp_path: Path) -> None:
    """With the agent gone (kill -9: its workers live on), a replica killed since the store
    was read still looks ready there; its port refuses the connection, so nothing was
    sent, and the call goes to the other replica, once."""
    from reconciler.runtimes.local.routing import Router  # the library call

    local.site.write_code(text=FATAL)
    pool = make_pool(local.site, replicas=2)
    local.runtime.apply(create(pool))
    with standalone_agent(local.site.state) as agent:
        wait_for(lambda: len(ready_pids(local, pool.id)) == 2, message="two ready replicas")
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    dead, alive = sorted(ready_pids(local, pool.id))
    os.kill(int(dead), signal.SIGKILL)
    wait_for(lambda: int(dead) not in workers_of(local.site.state), message="replica gone")
    log = tmp_path / "executions.log"
    router = Router(local.site.state)
    try:
        for _ in range(6):  # each call picks a replica at random: the dead one comes up
            outcome = router.invoke("alice", "acme/adder", {"log": str(log), "values": [1]})
            assert (outcome.how, outcome.output["pid"]) == ("warm", int(alive))
    finally:
        router.close()
    assert executions(log) == [alive] * 6
    os.kill(int(alive), signal.SIGKILL)  # no agent left to stop it
