"""A no-op reconcile costs O(kinds) requests, whatever the number of objects.

Requests are counted by an ApiClient subclass whose call_api records each
request and then does exactly what the client does (instrumentation; the
client's behaviour is not patched). The counted reconcile is what the CLI's
`plan` runs: pipeline.plan_config (observe + nodes + make_plan).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubekit import apply_all, plan_for, write_config
from kubernetes import client, config

from reconciler.config.model import Settings
from reconciler.pipeline import plan_config
from reconciler.runtimes.kubernetes.runtime import FOREIGN_LISTS, LISTS, KubernetesRuntime

pytestmark = pytest.mark.slow


class CountingApiClient(client.ApiClient):  # type: ignore[misc]
    """Counts requests by (method, path without query); otherwise the stock client."""

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.calls: Counter[tuple[str, str]] = Counter()

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        path = url.removeprefix(self.configuration.host).split("?", 1)[0]
        self.calls[(method, path)] += 1
        return super().call_api(method, url, *args, **kwargs)


def counting_runtime(kubeconfig: Path, settings: Settings) -> KubernetesRuntime:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration,
                            persist_config=False)
    return KubernetesRuntime(settings, api_client=CountingApiClient(configuration))


def noop_requests(root: Path, kubeconfig: Path, settings: Settings) -> Counter[tuple[str, str]]:
    runtime = counting_runtime(kubeconfig, settings)
    try:
        apply_all(plan_for(root, runtime), runtime)
        runtime.api.client.calls.clear()
        planned = plan_config(root, runtime)
        assert planned.plan.empty
        assert len(planned.live.pools) == len(planned.desired.pools)
        return Counter(runtime.api.client.calls)
    finally:
        runtime.close()


def test_a_noop_reconcile_makes_one_list_per_kind_at_any_size(
        tmp_path: Path, prefix: str, kubeconfig: Path, settings: Settings) -> None:
    small = noop_requests(write_config(tmp_path / "small", prefix, extra_users=3),
                          kubeconfig, settings)
    large = noop_requests(write_config(tmp_path / "large", prefix, extra_users=60),
                          kubeconfig, settings)
    expected = Counter({("GET", "/api/v1/namespaces"): 1, ("GET", "/api/v1/resourcequotas"): 1,
                        ("GET", "/apis/apps/v1/deployments"): 1, ("GET", "/api/v1/pods"): 1,
                        ("GET", "/api/v1/nodes"): 1})
    assert small == expected
    assert large == expected
    print(f"no-op reconcile: {sum(small.values())} requests at 5 pools, "
          f"{sum(large.values())} at 62 pools")


def test_only_tenant_and_quota_deletes_look_for_foreign_objects(
        tmp_path: Path, prefix: str, kubeconfig: Path, settings: Settings) -> None:
    """Before deleting a namespace, one list per kind in FOREIGN_LISTS, in that namespace
    only; observe() never makes them."""
    runtime = counting_runtime(kubeconfig, settings)
    calls = runtime.api.client.calls
    namespace = f"{prefix}alice"
    foreign = Counter({("GET", template.format(ns=namespace)): 1
                       for _, template, _ in FOREIGN_LISTS})
    try:
        root = write_config(tmp_path / "repo", prefix, vision=False, extra_users=1)
        apply_all(plan_for(root, runtime), runtime)
        calls.clear()
        runtime.observe()
        assert set(calls) == {("GET", path) for path in LISTS.values()}
        write_config(root, prefix, vision=False, alice=False, extra_users=1)
        (root / "limits.yaml").unlink()  # Tenant alice, her pool and her Quota go
        plan = plan_for(root, runtime)
        assert len(plan.actions) == 3
        calls.clear()
        apply_all(plan, runtime)
        assert Counter({key: n for key, n in calls.items() if key in foreign}) == foreign
        assert not [path for (method, path) in calls if method == "GET"
                    and path.startswith(f"/api/v1/namespaces/{namespace}/")
                    and ("GET", path) not in foreign and "resourcequotas" not in path]
    finally:
        runtime.close()
