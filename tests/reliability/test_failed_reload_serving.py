"""A reload that cannot finish keeps the old replicas serving, and status says why.

A version's digest is changed to one no model file has: the new replicas fail
their warm-up again and again. Calls keep going to the replicas of the
previous model (never to a cold start, which would fail the same way), and
`status` shows the old replicas with their digest next to the pool's new one,
and that the rollout is stuck.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from configkit import reconciler, write_algorithm, write_config  # noqa: E402
from conftest_local import Local, local_fixture  # noqa: E402,F401
from localkit import wait_for  # noqa: E402

pytestmark = pytest.mark.slow

POOL = "alice.acme.adder.aaaaaaaaaaaa"
WRONG = "sha256:" + "0" * 64


def test_calls_go_to_the_old_replicas_while_a_reload_fails(local: Local,
                                                           tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", replicas=2)
    state = ["--state", str(local.site.state)]
    assert reconciler("apply", str(config), *state, "--auto-approve").returncode == 0
    local.agent()
    local.runtime.wait_ready(POOL, 2, timeout=15)
    old = {r.id: r.model_digest for r in local.runtime.observe().status[POOL].replicas}

    write_algorithm(config, ("1.0.0", "1.5.0"), digests={"1.0.0": WRONG})
    applied = reconciler("apply", str(config), *state, "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    wait_for(lambda: "digest mismatch" in (local.runtime.observe().status[POOL].error or ""),
             message="the reload to fail")

    for _ in range(3):
        call = reconciler("invoke", "--as", "alice", "acme/adder", '{"values": [2, 3]}', *state)
        assert call.returncode == 0, call.stderr
        assert call.stderr.startswith("warm, ")
        output = json.loads(call.stdout)
        assert output["sum"] == 5 and str(output["pid"]) in old  # the old model (factor 1)

    shown = json.loads(reconciler("status", *state, "--format", "json").stdout)
    [pool] = shown["pools"]
    assert pool["modelDigest"] == WRONG and pool["ready"] == 0
    serving = {r["pid"]: r["modelDigest"] for r in pool["replicaStatus"]
               if r["state"] == "ready"}
    assert {str(pid) for pid in serving} == set(old)
    assert set(serving.values()) == set(old.values()) != {WRONG}
    assert "rollout stuck" in pool["error"] and "digest mismatch" in pool["error"]
    assert "2 replica(s) of the previous spec" in pool["error"]
    assert next(iter(old.values())) in pool["error"]
    text = reconciler("status", *state).stdout
    assert "rollout stuck" in text
