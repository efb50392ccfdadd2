"""`reconciler status` and `reconciler invoke` end to end, against real workers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from configkit import ENV, reconciler, write_config  # noqa: E402
from conftest_local import Local, local_fixture  # noqa: E402,F401

pytestmark = pytest.mark.slow

POOL = "alice.acme.adder.aaaaaaaaaaaa"
GPU_SETTINGS = """apiVersion: reconciler/v1
kind: Settings
metadata: {name: settings}
spec:
  local:
    nodes:
      - {name: box, processor: cpu, cpu: "2", memory: 4Gi, pods: 8}
      - {name: fake-gpu, processor: gpu, cpu: "2", memory: 4Gi, gpu: 1, pods: 2}
"""


@pytest.fixture
def applied(local: Local, tmp_path: Path) -> tuple[Local, Path]:
    config = write_config(tmp_path / "config", replicas=2, settings=GPU_SETTINGS)
    result = reconciler("apply", str(config), "--state", str(local.site.state),
                        "--auto-approve")
    assert result.returncode == 0, result.stderr
    return local, config


def test_status_without_agent_says_replicas_are_pending(applied: tuple[Local, Path]) -> None:
    local, _ = applied
    text = reconciler("status", "--state", str(local.site.state))
    assert text.returncode == 1  # below the reservation, and no agent: status fails
    lines = text.stdout.splitlines()
    assert lines[0].split()[:5] == ["POOL", "CALLER", "ALGORITHM", "VERSION", "READY"]
    assert lines[1].split()[:5] == [POOL, "alice", "acme/adder", "1.0.0", "0/2"]
    assert "no agent running; start `reconciler daemon`" in text.stdout
    assert "fake-gpu" in text.stdout and "gpu emulated" in text.stdout


def test_status_json_has_the_spec_shape(applied: tuple[Local, Path]) -> None:
    local, _ = applied
    local.agent()
    local.runtime.wait_ready(POOL, 2, timeout=15)
    result = reconciler("status", "--state", str(local.site.state), "--format", "json")
    data = json.loads(result.stdout)
    [pool] = data["pools"]
    assert set(pool) == {"id", "caller", "algorithm", "version", "commit", "replicas", "ready",
                         "modelDigest", "error", "replicaStatus"}
    assert (pool["id"], pool["replicas"], pool["ready"], pool["error"]) == (POOL, 2, 2, None)
    assert all(set(r) == {"pid", "state", "modelDigest", "startedAt"} and
               isinstance(r["pid"], int) and r["modelDigest"] == pool["modelDigest"]
               for r in pool["replicaStatus"])
    assert data["agent"]["running"] and data["lastApply"]["ok"]
    assert [n["emulatedGpu"] for n in data["nodes"]] == [False, True]


def test_invoke_routes_to_the_callers_warm_replica(applied: tuple[Local, Path]) -> None:
    local, _ = applied
    local.agent()
    local.runtime.wait_ready(POOL, 2, timeout=15)
    pids = {r.id for r in local.runtime.observe().status[POOL].replicas}
    result = reconciler("invoke", "--as", "alice", "acme/adder", '{"values": [1, 2, 3]}',
                        "--state", str(local.site.state))
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["sum"] == 6 and str(output["pid"]) in pids
    assert result.stderr.startswith("warm, ")


def test_invoke_without_a_reservation_is_cold(applied: tuple[Local, Path]) -> None:
    local, _ = applied
    local.agent()
    result = reconciler("invoke", "--as", "bob", "acme/adder/1.0.0", '{"values": [2]}',
                        "--state", str(local.site.state))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sum"] == 2
    assert result.stderr.startswith("cold, ") and "no warm replica of bob" in result.stderr


def test_invoke_private_version_only_for_owner_members(applied: tuple[Local, Path]) -> None:
    local, config = applied
    member = reconciler("invoke", "--as", "alice", "acme/adder/1.5.0", '{"values": [1]}',
                        "--state", str(local.site.state), "--config", str(config))
    assert member.returncode == 0, member.stderr
    assert json.loads(member.stdout)["sum"] == 10 and "cold" in member.stderr
    outsider = reconciler("invoke", "--as", "bob", "acme/adder/1.5.0", '{"values": [1]}',
                          "--state", str(local.site.state))
    assert outsider.returncode == 1 and outsider.stdout == ""
    assert "bob may not call private version 1.5.0 of acme/adder" in outsider.stderr


def test_invoke_reports_bad_input_and_algorithm_errors(applied: tuple[Local, Path]) -> None:
    local, _ = applied
    bad_json = reconciler("invoke", "--as", "alice", "acme/adder", "{not json",
                          "--state", str(local.site.state))
    assert bad_json.returncode == 1 and "INPUT_JSON is not JSON" in bad_json.stderr
    failing = reconciler("invoke", "--as", "alice", "acme/adder", "-",
                         "--state", str(local.site.state), stdin='{"values": ["x"]}')
    assert failing.returncode == 1 and "algorithm error: TypeError" in failing.stderr
    assert "Traceback" not in bad_json.stderr + failing.stderr


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True,
                          text=True, input="", timeout=60, env={**ENV, **env})


def test_invoke_loads_the_config_through_the_parse_cache(applied: tuple[Local, Path],
                                                         tmp_path: Path) -> None:
    local, config = applied
    cache = tmp_path / "cache"
    result = run("invoke", "--as", "alice", "acme/adder/1.0.0", '{"values": [4]}',
                 "--state", str(local.site.state), "--config", str(config),
                 env={"RECONCILER_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr
    assert list(cache.rglob("*.pickle")), "the config was parsed through the cache"


def test_invoke_selects_versions_as_a_reservation_would(applied: tuple[Local, Path],
                                                        tmp_path: Path) -> None:
    local, config = applied
    shared = "a" * 7 + "c" * 33  # 1.5.0's commit now starts like 1.0.0's (aaaa...)
    other = tmp_path / "other"
    shutil.copytree(config, other)
    algorithm = other / "algorithm.yaml"
    algorithm.write_text(algorithm.read_text().replace("c" * 40, shared))
    state = ["--state", str(local.site.state), "--config", str(other)]

    ambiguous = reconciler("invoke", "--as", "alice", "acme/adder/aaaaaaa", '{"values": [1]}',
                           *state)
    assert ambiguous.returncode == 1 and ambiguous.stdout == ""
    assert (f"commit prefix aaaaaaa of acme/adder is ambiguous: it matches {'a' * 40}, "
            f"{shared}; give more digits") in ambiguous.stderr
    assert "Traceback" not in ambiguous.stderr

    unique = reconciler("invoke", "--as", "alice", "acme/adder/aaaaaaac", '{"values": [1]}',
                        *state)
    assert unique.returncode == 0, unique.stderr
    assert json.loads(unique.stdout)["sum"] == 10  # 1.5.0's model

    missing = reconciler("invoke", "--as", "alice", "acme/adder/9.9.9", '{"values": [1]}',
                         *state)
    assert missing.returncode == 1
    assert "algorithm acme/adder has no published version 9.9.9" in missing.stderr
    short = reconciler("invoke", "--as", "alice", "acme/adder/aaaa", '{"values": [1]}', *state)
    assert short.returncode == 1
    assert "expected a semantic version or a commit (at least 7 hex digits)" in short.stderr


def test_invoke_input_that_is_not_text_is_a_user_error(applied: tuple[Local, Path],
                                                       tmp_path: Path) -> None:
    local, _ = applied
    (tmp_path / "input.bin").write_bytes(b"\xff\xfe\x00binary")
    done = reconciler("invoke", "--as", "alice", "acme/adder", f"@{tmp_path / 'input.bin'}",
                      "--state", str(local.site.state))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"input file {tmp_path / 'input.bin'} is not UTF-8" in done.stderr


BLOCKING = '''
import json, os, time

def load(path):
    with open(path) as handle:
        return json.load(handle)

def apply(input, model):
    with open(input["pidfile"], "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(600)
'''


def test_a_killed_invoke_leaves_no_cold_worker(applied: tuple[Local, Path],
                                               tmp_path: Path) -> None:
    """kill -9 of invoke mid-call: the cold worker sees its stdin pipe close and exits."""
    import os
    import signal

    from localkit import wait_for

    local, config = applied
    (config / "src" / "adder.py").write_text(BLOCKING)
    pidfile = tmp_path / "worker.pid"
    call = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "invoke", "--as", "bob", "acme/adder/1.0.0",
         json.dumps({"pidfile": str(pidfile)}), "--state", str(local.site.state),
         "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        worker = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), 30,
                              message="the cold worker is serving the call"))
        os.kill(call.pid, signal.SIGKILL)
        call.wait(10)
        wait_for(lambda: not Path(f"/proc/{worker}").exists()
                 or "zombie" in Path(f"/proc/{worker}/status").read_text(), 15,
                 message=f"cold worker {worker} gone after invoke was killed")
    finally:
        call.kill()
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
