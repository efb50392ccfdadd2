"""What the reconciler asks of the API server, counted in the server's audit log.

A no-op reconcile (the CLI's `plan`: pipeline.plan_config, i.e. observe +
nodes + make_plan) is one paged list per kind whatever the number of
objects; an apply from empty is one server-side apply per object and no
read before it; every list carries `limit`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from audit import Audit
from kubekit import apply_all, plan_for, write_config

from reconciler.apply import execute
from reconciler.config.model import Settings
from reconciler.pipeline import plan_config
from reconciler.runtimes.kubernetes.client import PAGE_SIZE
from reconciler.runtimes.kubernetes.runtime import FOREIGN_LISTS, KubernetesRuntime

pytestmark = pytest.mark.slow

NOOP = Counter({("get", "/apis/policy/v1"): 1,  # which PodDisruptionBudget API is served
                ("list", "/api/v1/namespaces"): 2,  # ours, and other instances' (a warning)
                ("list", "/api/v1/resourcequotas"): 1,
                ("list", "/apis/apps/v1/deployments"): 1,
                ("list", "/apis/policy/v1beta1/poddisruptionbudgets"): 1,
                ("list", "/api/v1/pods"): 2,  # ours, and the pods taking node capacity
                ("list", "/api/v1/nodes"): 1})


def noop_requests(root: Path, kubeconfig: Path, settings: Settings,
                  audit: Audit) -> Counter[tuple[str, str]]:
    runtime = KubernetesRuntime(settings, kubeconfig=kubeconfig)
    try:
        apply_all(plan_for(root, runtime), runtime)
    finally:
        runtime.close()
    runtime = KubernetesRuntime(settings, kubeconfig=kubeconfig)
    try:
        start = audit.mark()
        planned = plan_config(root, runtime)
        requests = audit.requests(start, audit.mark())
        assert planned.plan.empty
        assert len(planned.live.pools) == len(planned.desired.pools)
    finally:
        runtime.close()
    for request in requests:
        if request.verb == "list":
            assert request.query.get("limit") == [str(PAGE_SIZE)], request
    return Counter(r.key for r in requests)


def test_a_noop_reconcile_makes_one_list_per_kind_at_any_size(
        tmp_path: Path, prefix: str, kubeconfig: Path, settings: Settings,
        audit: Audit) -> None:
    small = noop_requests(write_config(tmp_path / "small", prefix, extra_users=3),
                          kubeconfig, settings, audit)
    large = noop_requests(write_config(tmp_path / "large", prefix, extra_users=60),
                          kubeconfig, settings, audit)
    assert small == NOOP
    assert large == NOOP
    print(f"no-op reconcile: {sum(small.values())} requests at 5 pools, "
          f"{sum(large.values())} at 62 pools")


def test_an_apply_from_empty_is_one_write_per_object_and_no_read(
        tmp_path: Path, prefix: str, kubeconfig: Path, settings: Settings,
        audit: Audit) -> None:
    root = write_config(tmp_path / "repo", prefix, extra_users=20)
    runtime = KubernetesRuntime(settings, kubeconfig=kubeconfig)
    try:
        plan = plan_for(root, runtime)
        start = audit.mark()
        result = execute(plan, runtime, wait_timeout=1)
        requests = audit.requests(start, audit.mark())
    finally:
        runtime.close()
    assert result.ok, result.to_json()
    pools = sum(1 for a in plan.actions if str(a.kind) == "WarmPool")
    others = len(plan.actions) - pools
    # a Deployment and a PodDisruptionBudget per pool; a namespace or a quota per other action
    assert Counter(r.verb for r in requests) == Counter({"patch": 2 * pools + others})
    assert all(r.code == 201 for r in requests)  # each created by server-side apply


def test_only_tenant_and_quota_deletes_look_for_foreign_objects(
        tmp_path: Path, prefix: str, kubeconfig: Path, settings: Settings,
        audit: Audit) -> None:
    """Before deleting a namespace, one list per kind in FOREIGN_LISTS, in that namespace
    only, metadata only; observe() never makes them."""
    runtime = KubernetesRuntime(settings, kubeconfig=kubeconfig)
    namespace = f"{prefix}alice"
    foreign = Counter({("list", template.format(ns=namespace)): 1
                       for _, template, _ in FOREIGN_LISTS})
    try:
        root = write_config(tmp_path / "repo", prefix, vision=False, extra_users=1)
        apply_all(plan_for(root, runtime), runtime)
        start = audit.mark()
        runtime.observe()
        assert not [r for r in audit.requests(start, audit.mark())
                    if f"/namespaces/{namespace}/" in r.path]
        write_config(root, prefix, vision=False, alice=False, extra_users=1)
        (root / "limits.yaml").unlink()  # Tenant alice, her pool and her Quota go
        plan = plan_for(root, runtime)
        assert len(plan.actions) == 3
        start = audit.mark()
        apply_all(plan, runtime)
        requests = audit.requests(start, audit.mark())
    finally:
        runtime.close()
    counted = Counter(r.key for r in requests)
    assert Counter({key: n for key, n in counted.items() if key in foreign}) == foreign
    assert not [r for r in requests if r.verb == "get"]  # the observed uids are enough
    assert sum(1 for r in requests if r.verb == "delete") == 4  # deployment, pdb, quota, ns
