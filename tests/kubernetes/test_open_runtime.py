"""open_runtime: the one way to open a runtime, with everything its callers pass.

The daemon opens every runtime through it (a pass's, the probe's, the preflight's,
the restart's look at the local history); the Kubernetes side runs against the
envtest API server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config.model import Settings
from reconciler.daemon.passes import PassSettings, PipelinePass
from reconciler.errors import ReconcilerError, RuntimeFault
from reconciler.plan.plans import Action, Op
from reconciler.runtimes import FullRuntime, open_runtime
from reconciler.runtimes.kubernetes.client import Api
from reconciler.states import ResourceKind, Tenant

pytestmark = pytest.mark.slow


def test_local_roots_default_to_the_config_directory(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    runtime = open_runtime("local", state_dir=tmp_path / "state", config_dir=config_dir)
    try:
        assert isinstance(runtime, FullRuntime)
        assert runtime.config_dir == config_dir.resolve()
        assert runtime.data_root == (config_dir / "data").resolve()
        assert runtime.code_root == (config_dir / "src").resolve()
    finally:
        runtime.close()
    runtime = open_runtime("local", state_dir=tmp_path / "state", config_dir=config_dir,
                           data_root=tmp_path / "models")
    try:
        assert runtime.data_root == (tmp_path / "models").resolve()
        assert runtime.code_root == (config_dir / "src").resolve()
    finally:
        runtime.close()
    with pytest.raises(ReconcilerError, match="unknown runtime 'nomad'"):
        open_runtime("nomad", state_dir=tmp_path / "state")


def test_a_closed_gate_stops_every_kubernetes_write(tmp_path: Path, kubeconfig: Path,
                                                    settings: Settings, prefix: str,
                                                    api: Api) -> None:
    closed: list[str | None] = ["another daemon holds the Lease"]
    runtime = open_runtime("kubernetes", state_dir=tmp_path, settings=settings,
                           kubeconfig=kubeconfig, gate=lambda: closed[0])
    create = Action(Op.CREATE, ResourceKind.TENANT, "carol", after=Tenant("carol"))
    try:
        assert isinstance(runtime, FullRuntime)
        with pytest.raises(RuntimeFault, match="not applied: another daemon holds the Lease"):
            runtime.apply(create)
        assert api.get_or_none(f"/api/v1/namespaces/{prefix}carol") is None
        closed[0] = None
        runtime.apply(create)
        assert api.get(f"/api/v1/namespaces/{prefix}carol")
        runtime.record_apply({"ok": True, "entries": []}, "c" * 40)  # no-ops on a cluster
        runtime.save_roots()
        assert [n["name"] for n in runtime.report()["nodes"]]
    finally:
        runtime.close()


def test_the_daemon_probe_keeps_one_runtime_until_closed(tmp_path: Path,
                                                         kubeconfig: Path) -> None:
    """/status and /metrics re-read the pools at most once a second: one client for the
    daemon's life, not a new one (and its connections) per read."""
    reconcile = PipelinePass(PassSettings(runtime="kubernetes", state_dir=tmp_path,
                                          kubeconfig=kubeconfig))
    reconcile.observe()
    first = reconcile._probe
    assert first is not None
    reconcile.observe()
    assert reconcile._probe is first
    reconcile.close()
    assert reconcile._probe is None
    reconcile.close()  # twice: fine
