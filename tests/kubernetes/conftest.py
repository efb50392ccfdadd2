"""Fixtures: one real API server for the session, a runtime per test, cluster nodes.

Without the envtest binaries ($KUBEBUILDER_ASSETS or ../shared/envtest) the
tests that need the server are skipped with the reason; on this project's
machines and in CI the binaries are there and the tests run.

Tests share the server, so each gets its own namespace prefix, and every
namespace the reconciler made is deleted afterwards. envtest never finalizes
namespaces: they stay Terminating, which observe() already leaves out.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from audit import Audit  # noqa: E402
from envtest import Envtest, EnvtestError, find_assets  # noqa: E402
from kubekit import make_node  # noqa: E402

from reconciler.config.model import KubernetesSettings, Settings  # noqa: E402
from reconciler.runtimes.kubernetes import manifests as m  # noqa: E402
from reconciler.runtimes.kubernetes.client import Api, connect  # noqa: E402
from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime  # noqa: E402

_counter = itertools.count(1)
TEST_AGENT = "reconciler-tests"  # the tests' own requests: not counted as the reconciler's


def test_api(kubeconfig: Path) -> Api:
    """A client for the tests' own requests (set-up, checks, playing controllers)."""
    client = connect(kubeconfig)
    client.user_agent = TEST_AGENT
    return Api(client)

NODES = {  # name -> (allocatable, labels)
    "cpu-node-1": ({"cpu": "8", "memory": "16Gi", "pods": "110"}, {}),
    "gpu-node-1": ({"cpu": "8", "memory": "32Gi", "pods": "110", m.GPU: "2"},
                   {"accelerator": "nvidia"}),
}


@pytest.fixture(scope="session")
def envtest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envtest]:
    assets = find_assets(Path(__file__))
    if assets is None:
        pytest.skip("envtest binaries (etcd, kube-apiserver) not found: set "
                    "KUBEBUILDER_ASSETS or put them in ../shared/envtest")
    server = Envtest(assets, tmp_path_factory.mktemp("envtest"))
    try:
        server.start()
    except EnvtestError as exc:
        pytest.fail(f"envtest did not start:\n{exc}", pytrace=False)
    try:
        api = test_api(server.kubeconfig)
        for name, (allocatable, labels) in NODES.items():
            make_node(api, name, allocatable, labels)
        api.close()
        yield server
    finally:
        from reconciler.runtimes.kubernetes import watches

        watches.stop_all()
        server.cleanup()


@pytest.fixture
def kubeconfig(envtest: Envtest) -> Path:
    return envtest.kubeconfig


@pytest.fixture
def api(envtest: Envtest) -> Iterator[Api]:
    client = test_api(envtest.kubeconfig)
    yield client
    client.close()


@pytest.fixture
def audit(envtest: Envtest, api: Api) -> Audit:
    return Audit(envtest.audit_log, api)


@pytest.fixture
def prefix(api: Api) -> Iterator[str]:
    """A namespace prefix of this test's own; its managed namespaces are deleted after."""
    value = f"t{next(_counter)}-"
    yield value
    listed = api.list("/api/v1/namespaces", labels=m.SELECTOR, metadata_only=True).items
    for namespace in listed:
        meta = namespace["metadata"]
        if meta["name"].startswith(value) and not meta.get("deletionTimestamp"):
            api.delete(f"/api/v1/namespaces/{meta['name']}")


@pytest.fixture
def settings(prefix: str) -> Settings:
    return Settings(kubernetes=KubernetesSettings(
        namespace_prefix=prefix, gpu_node_selector={"accelerator": "nvidia"},
        gpu_tolerations=({"key": m.GPU, "operator": "Exists", "effect": "NoSchedule"},)))


@pytest.fixture
def runtime(settings: Settings, kubeconfig: Path) -> Iterator[KubernetesRuntime]:
    target = KubernetesRuntime(settings, kubeconfig=kubeconfig, poll_interval=0.05)
    yield target
    target.close()
