"""`reconciler status` that can fail, its output forms and filters; `reconciler wait --ready`.

Real parts: a config applied with the real CLI to a real state directory, a
real agent started and stopped by the test, real worker processes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from configkit import reconciler, write_config  # noqa: E402
from conftest_local import Local, local_fixture  # noqa: E402,F401

pytestmark = pytest.mark.slow
POOL = "alice.acme.adder.aaaaaaaaaaaa"


@pytest.fixture
def applied(local: Local, tmp_path: Path) -> Local:
    config = write_config(tmp_path / "config", replicas=2)
    result = reconciler("apply", str(config), "--state", str(local.site.state),
                        "--auto-approve")
    assert result.returncode == 0, result.stderr
    return local


def status(local: Local, *args: str) -> tuple[int, str, str]:
    done = reconciler("status", "--state", str(local.site.state), *args)
    return done.returncode, done.stdout, done.stderr


def test_status_fails_while_pools_are_short_or_the_agent_is_down(applied: Local) -> None:
    code, out, err = status(applied)
    assert code == 1
    assert out.splitlines()[1].split()[:5] == [POOL, "alice", "acme/adder", "1.0.0", "0/2"]
    assert f"not ready: pool {POOL} (alice, acme/adder) is below its reservation: 0/2" in err
    assert "not ready: the local agent is not running" in err
    code, out, _ = status(applied, "-o", "json")
    assert code == 1 and json.loads(out)["pools"][0]["ready"] == 0  # stdout stays pure JSON
    code, out, _ = status(applied, "--format", "json")
    assert code == 1 and json.loads(out)["pools"][0]["id"] == POOL
    code, out, _ = status(applied, "-o", "yaml")
    assert code == 1 and yaml.safe_load(out)["pools"][0]["replicas"] == 2
    code, _, err = status(applied, "-o", "json", "--format", "text")
    assert code == 1 and "disagree" in err


def test_wait_times_out_naming_what_is_not_ready(applied: Local) -> None:
    started = time.monotonic()
    done = reconciler("wait", "--ready", "--timeout", "1s", "--interval", "200ms",
                      "--state", str(applied.site.state))
    assert done.returncode == 1
    assert time.monotonic() - started < 15
    assert f"pool {POOL}" in done.stderr and "agent is not running" in done.stderr
    assert "gave up after 1s" in done.stderr


def test_wait_returns_once_ready_then_status_passes(applied: Local) -> None:
    applied.agent()
    done = reconciler("wait", "--ready", "--timeout", "60s", "--state", str(applied.site.state))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ready: 1 pools, 2 replicas"
    code, out, err = status(applied)
    assert code == 0, err
    assert out.splitlines()[1].split()[4] == "2/2"
    code, out, _ = status(applied, "-o", "wide")
    header = out.splitlines()[0].split()
    assert header[-4:] == ["COMMIT", "REPLICAS", "STARTED", "ERROR"]
    assert "2 ready" in out.splitlines()[1]
    code, out, _ = status(applied, "--caller", "bob")
    assert code == 0 and out.startswith("No warm pools.")
    code, out, _ = status(applied, "--algorithm", "acme/adder", "--caller", "alice",
                          "--events")
    assert code == 0 and POOL in out
    assert "events (newest first):" in out and "is ready on port" in out
    code, out, _ = status(applied, "-o", "json", "--events")
    events = json.loads(out)["events"]
    assert events and all({"time", "pool", "message"} <= set(e) for e in events)
    applied.agents.pop().stop()  # the agent goes away, and its workers with it
    code, _, err = status(applied)
    assert code == 1 and "agent is not running" in err
