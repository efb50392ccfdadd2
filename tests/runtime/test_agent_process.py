"""The agent as its own process: `reconciler daemon --no-agent` writes the store and
`reconciler agent` runs the workers (a controller and a kubelet apart); together they
refuse to both run workers. And the agent gives each GPU replica its own devices."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from configkit import ENV, reconciler, write_config
from conftest_local import Local
from localkit import create, invoke, make_pool, standalone_agent, wait_for, workers_of

sys.path.insert(0, str(Path(__file__).parents[1] / "daemon"))

from gitops_harness import DaemonProcess  # noqa: E402

from reconciler.config.model import NodeSpec, Processor, Settings  # noqa: E402
from reconciler.plan.plans import Action, Op  # noqa: E402
from reconciler.runtimes.local.runtime import LocalRuntime  # noqa: E402
from reconciler.states import ResourceKind  # noqa: E402

pytestmark = pytest.mark.slow
POOL = "alice.acme.adder.aaaaaaaaaaaa"


def test_daemon_without_agent_and_an_agent_apart(local: Local, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    state = local.site.state
    daemon = DaemonProcess(["--repo", str(config), "--no-agent", "--interval", "1s"],
                           state).started()
    try:
        daemon.wait_status(lambda s: s["lastResult"] == "applied", 20, "the config applied")
        assert workers_of(state) == [] and not local.runtime.report()["agent"]["running"]
        assert "no local agent (--no-agent)" in daemon.output()
        with standalone_agent(state, stderr=subprocess.PIPE) as agent:
            daemon.wait_status(lambda s: s["pools"]["ready"] == 1, 20, "the agent's replica")
            call = reconciler("invoke", "--as", "alice", "acme/adder", '{"values": [2]}',
                              "--state", str(state))
            assert call.returncode == 0 and call.stderr.startswith("warm, ")
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=15) == 0
            assert agent.stderr is not None and b"Traceback" not in agent.stderr.read()
        assert workers_of(state) == []
        assert daemon.get("/healthz")[0] == 200  # the daemon goes on without workers
    finally:
        assert daemon.stop() == 0


def test_an_agent_and_a_daemon_with_its_own_agent_refuse_to_share_a_state(
        local: Local, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    state = local.site.state
    daemon = DaemonProcess(["--repo", str(config), "--interval", "1s"], state).started()
    try:
        daemon.wait_status(lambda s: s["pools"]["ready"] == 1, 20, "the daemon's replica")
        second = reconciler("agent", "--state", str(state), timeout=30)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert "locked by `reconciler agent`" in second.stderr
    finally:
        assert daemon.stop() == 0
    with standalone_agent(state) as agent:
        wait_for(lambda: local.runtime.report()["agent"]["running"], message="agent running")
        refused = subprocess.run(
            [sys.executable, "-m", "reconciler", "daemon", "--repo", str(config), "--state",
             str(state), "--listen", "127.0.0.1:0"], capture_output=True, text=True,
            timeout=60, env=ENV)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "locked by `reconciler agent`" in refused.stderr
        assert "start the daemon with --no-agent" in refused.stderr
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=15) == 0


DEVICES = '''
import os

def load(path):
    return None

def apply(input, model):
    return {"devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "secrets": sorted(k for k in os.environ if k.startswith(("RECONCILER_", "GIT_")))}
'''
FAKE_NVIDIA_SMI = """#!/bin/sh
echo "GPU 0: Stand-in GPU (UUID: GPU-00000000-0000-0000-0000-000000000000)"
echo "GPU 1: Stand-in GPU (UUID: GPU-11111111-1111-1111-1111-111111111111)"
"""


def devices_seen(local: Local, pool_id: str) -> list[str | None]:
    ports = local.runtime.ready_endpoints(pool_id)
    return sorted(invoke(port, {})["output"]["devices"] for port in ports)


def test_gpu_replicas_get_their_own_devices_and_cpu_replicas_none(
        local: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # what a worker must not inherit
    local.site.write_code("devices", DEVICES)
    vision = make_pool(local.site, name="vision", processor="gpu", gpu=1, replicas=2,
                       entrypoint="devices:apply")
    text = make_pool(local.site, name="text", replicas=1, entrypoint="devices:apply")
    for pool in (vision, text):
        local.runtime.apply(create(pool))
    agent = local.agent()
    assert agent.gpus == (0, 1)
    local.runtime.wait_ready(vision.id, 2, timeout=15)
    local.runtime.wait_ready(text.id, 1, timeout=15)
    assert devices_seen(local, vision.id) == ["0", "1"]
    assert devices_seen(local, text.id) == [""]

    # A third replica (the plan would refuse it; the store may be written by hand) has
    # no GPU left: it waits, and the two keep theirs.
    local.runtime.apply(Action(Op.SCALE, ResourceKind.WARM_POOL, vision.id, before=vision,
                               after=replace(vision, replicas=3)))
    error = wait_for(lambda: local.runtime.observe().status[vision.id].error,
                     message="the GPU shortage")
    assert "waiting for 1 free GPU(s) per replica: 2 of this machine's 2 are in use" in error
    for _ in range(3):
        agent.reconcile_once()
    assert devices_seen(local, vision.id) == ["0", "1"]
    assert len(workers_of(local.site.state)) == 3


def test_an_emulated_gpu_node_runs_gpu_replicas_on_the_cpu_without_the_agents_secrets(
        local: Local, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-gpu-tools"))  # no nvidia-smi anywhere
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("RECONCILER_WEBHOOK_SECRET", "not-for-algorithms")
    monkeypatch.setenv("GIT_ASKPASS", "/bin/echo")
    local.site.write_code("devices", DEVICES)
    vision = make_pool(local.site, name="vision", processor="gpu", gpu=1,
                       entrypoint="devices:apply")
    declared = Settings(local_nodes=(NodeSpec("laptop-gpu", Processor.GPU, "2", "4Gi", gpu=2,
                                              pods=4),))
    runtime = LocalRuntime(local.site.state, settings=declared, data_root=local.site.data,
                           code_root=local.site.src)
    runtime.apply(create(vision))
    assert runtime.nodes()[0].emulated_gpu
    runtime.close()
    assert local.agent().gpus == ()
    local.runtime.wait_ready(vision.id, 1, timeout=15)
    assert devices_seen(local, vision.id) == [""]
    [port] = local.runtime.ready_endpoints(vision.id)
    assert invoke(port, {})["output"]["secrets"] == []  # the agent's own settings stay its own
