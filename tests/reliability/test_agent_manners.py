"""Manners of the local runtime: the agent keeps to the nodes' pods and to each version's
warmupTimeout, and `invoke` turns absurd input and options into plain errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from configkit import reconciler, write_config  # noqa: E402
from conftest_local import Local, local_fixture  # noqa: E402,F401
from localkit import create, make_pool, wait_for, workers_of  # noqa: E402

from reconciler.config.model import NodeSpec, Processor, Settings  # noqa: E402
from reconciler.runtimes.local.runtime import LocalRuntime  # noqa: E402

pytestmark = pytest.mark.slow

NEVER_WARM = '''
import time

def load(path):
    time.sleep(600)

def apply(input, model):
    return input
'''


def test_the_agent_starts_no_more_replicas_than_the_nodes_have_pods(local: Local) -> None:
    """The plan would refuse 10 replicas on a 3-pod node; the store may still hold them (a
    node declared smaller later, a store written by hand): the agent keeps to the pods."""
    small = Settings(local_nodes=(NodeSpec("small", Processor.CPU, "8", "8Gi", pods=3),))
    runtime = LocalRuntime(local.site.state, settings=small, data_root=local.site.data,
                           code_root=local.site.src)
    pool = make_pool(local.site, replicas=10)
    runtime.apply(create(pool))
    runtime.close()
    agent = local.agent()
    wait_for(lambda: local.runtime.observe().ready(pool.id) == 3, message="three ready")
    for _ in range(3):
        agent.reconcile_once()
    assert len(workers_of(local.site.state)) == 3
    error = local.runtime.observe().status[pool.id].error or ""
    assert "the cpu nodes' 3 pods" in error and "allows 3 of 10 replicas" in error


def test_a_replica_not_warm_within_its_warmup_timeout_is_stopped(local: Local,
                                                                 tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    (config / "src" / "adder.py").write_text(NEVER_WARM)
    algorithm = config / "algorithm.yaml"
    algorithm.write_text(algorithm.read_text().replace(
        "      compiledAt: \"2026-11-01T10:00:00Z\"\n",
        "      compiledAt: \"2026-11-01T10:00:00Z\"\n      warmupTimeout: 1s\n"))
    state = ["--state", str(local.site.state)]
    applied = reconciler("apply", str(config), *state, "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    local.agent()
    pool = "alice.acme.adder.aaaaaaaaaaaa"
    error = wait_for(lambda: local.runtime.observe().status[pool].error, timeout=20,
                     message="the warm-up timeout to be reported")
    assert "not warm within 1s (the version's warmupTimeout)" in error
    assert len(workers_of(local.site.state)) <= 1  # stopped, then tried again with backoff


@pytest.mark.parametrize("value", ["0s", "soon", "-1s", "10"])
def test_a_warmup_timeout_must_be_a_positive_duration(tmp_path: Path, value: str) -> None:
    config = write_config(tmp_path / "config")
    algorithm = config / "algorithm.yaml"
    algorithm.write_text(algorithm.read_text().replace(
        "      compiledAt: \"2026-11-01T10:00:00Z\"\n",
        f"      compiledAt: \"2026-11-01T10:00:00Z\"\n      warmupTimeout: \"{value}\"\n"))
    done = reconciler("validate", str(config))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "algorithm.yaml:" in done.stdout and "warmupTimeout: must be a duration" in done.stdout


def test_input_json_nested_thousands_deep_is_a_plain_error(local: Local) -> None:
    deep = "[" * 5000 + "]" * 5000
    done = reconciler("invoke", "--as", "alice", "acme/adder", deep,
                      "--state", str(local.site.state))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "INPUT_JSON is nested too deeply" in done.stderr


def test_input_with_a_number_of_thousands_of_digits_is_a_plain_error(local: Local) -> None:
    done = reconciler("invoke", "--as", "alice", "acme/adder", "9" * 5000,
                      "--state", str(local.site.state))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "INPUT_JSON holds a number of more digits than the worker decodes" in done.stderr


@pytest.mark.parametrize("source", ["@/dev/zero", "-"])
def test_endless_input_is_refused_at_the_replicas_limit(local: Local, source: str) -> None:
    """@/dev/zero (or stdin that never ends) was read whole: all memory, then a
    MemoryError traceback. It is read up to the 64 MiB a replica accepts."""
    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run([sys.executable, "-m", "reconciler", "invoke", "--as", "alice",
                               "acme/adder", source, "--state", str(local.site.state)],
                              stdin=zeros, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "is over 67108864 bytes, the most a replica accepts" in done.stderr


@pytest.mark.parametrize("timeout", ["0", "0s"])
def test_a_zero_timeout_is_a_usage_error(local: Local, timeout: str) -> None:
    done = reconciler("invoke", "--as", "alice", "acme/adder", "{}", "--timeout", timeout,
                      "--state", str(local.site.state))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--timeout" in done.stderr and "greater than 0" in done.stderr
    assert not (local.site.state / "state.db").exists()  # refused before anything ran
