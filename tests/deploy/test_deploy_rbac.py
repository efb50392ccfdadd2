"""Least privilege, proven on a real API server with RBAC and an audit log.

The server (envtest, v1.20) runs with `--authorization-mode RBAC`. deploy/base is applied
as it is (by an admin), and the reconciler authenticates as the ServiceAccount those
manifests bind (a token from the TokenRequest API), so its permissions are exactly the
ClusterRole and Role of deploy/, read from those files. As that identity the real CLI
runs plan, apply (creates, updates and deletes of tenants, quotas and pools), status and
the daemon with its Lease (found through POD_NAMESPACE). The audit log then shows:
- no request of the reconciler was refused (zero 403s);
- every grant of deploy/ was used, but those listed in NOT_EXERCISED;
- what the role must not do is refused (a Secret's data, another namespace's Lease, ...),
  and shows up as 403 in the same log, so counting 403s there means something.
The same server's OpenAPI (1.20) checks every manifest strictly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deploykit import by_kind, manifests, object_path, strict_openapi_schemas
from jsonschema import Draft4Validator

KUBE_TESTS = Path(__file__).resolve().parents[1] / "kubernetes"
sys.path.insert(0, str(KUBE_TESTS))

from envtest import Envtest, EnvtestError, find_assets  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from kubekit import ENV, make_node, write_config  # noqa: E402

from reconciler.runtimes.kubernetes.client import (  # noqa: E402
    METADATA_LIST,
    Api,
    ApiError,
    connect,
)
from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]

[DEPLOYMENT] = by_kind("Deployment")
NAMESPACE = DEPLOYMENT["metadata"]["namespace"]
ACCOUNT = DEPLOYMENT["spec"]["template"]["spec"]["serviceAccountName"]
USER = f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
PREFIX = "rbac-"
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""
# Grants the scenario does not reach: the daemon's watches (its --once pass lists), and the
# reads of one object, which writes make only when a precondition fails (someone else made
# or replaced the object meanwhile) and wait_ready makes for a version move.
NOT_EXERCISED = {
    *{("", r, "watch") for r in ("namespaces", "resourcequotas", "pods", "nodes")},
    ("apps", "deployments", "watch"), ("policy", "poddisruptionbudgets", "watch"),
    ("", "resourcequotas", "get"), ("apps", "deployments", "get"),
    ("policy", "poddisruptionbudgets", "get"),
}


@dataclass
class Cluster:
    server: Envtest
    admin: Api
    audit: Path
    kubeconfig: Path  # the ServiceAccount's


def kubeconfig_for(server: Envtest, token: str, path: Path) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "envtest", "cluster": {
            "server": server.host, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "envtest", "user": "sa"}}]}))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    assets = find_assets(KUBE_TESTS / "envtest.py")
    if assets is None:
        pytest.skip("envtest binaries (etcd, kube-apiserver) not found: set "
                    "KUBEBUILDER_ASSETS or put them in ../shared/envtest")
    work = tmp_path_factory.mktemp("rbac")
    (work / "audit-policy.yaml").write_text(AUDIT_POLICY)
    audit = work / "audit.log"
    server = Envtest(assets, work / "server", authorization="RBAC", extra_args=(
        "--audit-policy-file", str(work / "audit-policy.yaml"),
        "--audit-log-path", str(audit), "--audit-log-mode", "blocking"))
    try:
        server.start()
    except EnvtestError as exc:
        pytest.fail(f"envtest did not start:\n{exc}", pytrace=False)
    admin = Api(connect(server.kubeconfig))
    try:
        make_node(admin, "cpu-node-1", {"cpu": "8", "memory": "16Gi", "pods": "110"}, {})
        make_node(admin, "gpu-node-1", {"cpu": "8", "memory": "32Gi", "pods": "110",
                                        "nvidia.com/gpu": "2"}, {"accelerator": "nvidia"})
        for doc in manifests():  # deploy/base, as `kubectl apply --server-side -k` would
            admin.apply(object_path(doc), doc)
        token = admin.request(
            "POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{ACCOUNT}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": 3600}})["status"]["token"]
        yield Cluster(server, admin, audit, kubeconfig_for(server, token, work / "sa.json"))
    finally:
        admin.close()
        server.cleanup()


def events(audit: Path) -> list[dict[str, Any]]:
    """The reconciler identity's completed requests, from the audit log."""
    lines = audit.read_text().splitlines()
    found = [json.loads(line) for line in lines if line.strip()]
    return [e for e in found if e.get("user", {}).get("username") == USER
            and e.get("stage") == "ResponseComplete"]


def refused(audit: Path) -> list[str]:
    return [f"{e['verb']} {e['requestURI']}" for e in events(audit)
            if e.get("responseStatus", {}).get("code") == 403]


def cli(cluster: Cluster, failures: list[str], *args: str, env: dict[str, str] | None = None,
        short_pools: bool = False) -> subprocess.CompletedProcess[str]:
    """The real CLI as the ServiceAccount; a failure is noted (the 403s are asserted first,
    as they say why). `short_pools`: exit 1 for pools below their reservation is expected
    (`status` on a server with no kubelet: no pod ever becomes ready)."""
    done = subprocess.run([sys.executable, "-m", "reconciler", *args, "--runtime",
                           "kubernetes", "--kubeconfig", str(cluster.kubeconfig)],
                          capture_output=True, text=True, timeout=120, input="",
                          env={**ENV, **(env or {})})
    expected = done.returncode == 1 and short_pools and "not ready: pool" in done.stderr
    if done.returncode != 0 and not expected:
        failures.append(f"reconciler {' '.join(args)}:\n{done.stdout}{done.stderr}")
    return done


def granted() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every rule of deploy/'s ClusterRole and Role."""
    return {(group, resource, verb)
            for role in by_kind("ClusterRole") + by_kind("Role") for rule in role["rules"]
            for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]}


def used(audit: Path) -> set[tuple[str, str, str]]:
    """What the reconciler did; a server-side apply that made a new object (201) used the
    `create` permission too (the API server checks it for such a patch)."""
    out = set()
    for event in events(audit):
        ref = event.get("objectRef") or {}
        if not ref.get("resource") or ref.get("subresource"):
            continue
        key = (ref.get("apiGroup", ""), ref["resource"])
        out.add((*key, event["verb"]))
        if event["verb"] == "patch" and event.get("responseStatus", {}).get("code") == 201:
            out.add((*key, "create"))
    return out


def test_the_reconciler_runs_with_exactly_the_permissions_of_deploy(
        cluster: Cluster, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", PREFIX)
    state = ["--state", str(tmp_path / "state")]
    failed: list[str] = []
    cli(cluster, failed, "plan", str(config), *state)
    cli(cluster, failed, "apply", str(config), *state, "--auto-approve")  # creates
    write_config(config, PREFIX, sentiment_replicas=3, max_engines=6)
    cli(cluster, failed, "apply", str(config), *state, "--auto-approve")  # scale, quota update
    write_config(config, PREFIX, sentiment_replicas=3, vision=False)
    (config / "limits.yaml").unlink()
    deletes = cli(cluster, failed, "apply", str(config), *state, "--auto-approve")
    cli(cluster, failed, "status", *state, short_pools=True)
    once = cli(cluster, failed, "daemon", "--once", "--repo", str(config), "--state",
               str(tmp_path / "daemon"), "--lease-duration", "3s",
               env={"POD_NAMESPACE": NAMESPACE, "RECONCILER_LEASE_NAMESPACE": ""})

    assert refused(cluster.audit) == [], "the reconciler was refused these requests"
    assert failed == []
    assert "Tenant bob" in deletes.stdout and "Quota alice" in deletes.stdout, deletes.stdout
    lease = cluster.admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}"
                              "/leases/reconciler")
    assert lease["spec"].get("holderIdentity") is None, once.stderr  # released on exit
    namespaces = [n["metadata"]["name"] for n in cluster.admin.get("/api/v1/namespaces")["items"]
                  if n["metadata"]["name"].startswith(PREFIX)]
    assert f"{PREFIX}alice" in namespaces
    unused = granted() - used(cluster.audit)
    assert unused <= NOT_EXERCISED, f"granted in deploy/ but never used: {sorted(unused)}"
    assert used(cluster.audit) - granted() == set()


def test_what_the_role_must_not_do_is_refused(cluster: Cluster) -> None:
    cluster.admin.request("POST", "/api/v1/namespaces/default/secrets", body={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-password"},
        "stringData": {"password": "hunter2"}})
    account = Api(connect(cluster.kubeconfig))
    attempts = [
        ("GET", "/api/v1/namespaces/default/secrets/db-password", None),  # a Secret's data
        ("POST", "/api/v1/namespaces/default/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mine"}}),
        ("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/reconciler", None),
        ("GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/other", None),
        ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "escalate"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}]}),
        ("DELETE", "/api/v1/nodes/cpu-node-1", None),
        ("GET", "/api/v1/namespaces/default/pods/any", None),
    ]
    try:
        for method, path, body in attempts:
            with pytest.raises(ApiError) as caught:
                account.request(method, path, body=body)
            assert caught.value.status == 403, (method, path, str(caught.value))
        listed = account.request("GET", "/api/v1/namespaces/default/secrets",
                                 accept=METADATA_LIST)  # the one read of Secrets it may do
    finally:
        account.close()
    assert listed["kind"] == "PartialObjectMetadataList"  # names only: no data came back
    assert [i["metadata"]["name"] for i in listed["items"]] == ["db-password"]
    assert "data" not in listed["items"][0]
    assert len(refused(cluster.audit)) >= len(attempts), "the audit log records 403s"


def test_every_manifest_is_valid_for_the_servers_own_schema(cluster: Cluster) -> None:
    """kubernetes-validate ships no 1.20 schema: the 1.20 server's OpenAPI, made strict."""
    schemas = strict_openapi_schemas(cluster.admin.get("/openapi/v2"))
    for doc in manifests():
        schema = schemas[(doc["apiVersion"], doc["kind"])]
        errors = [e.message for e in Draft4Validator(schema).iter_errors(doc)]
        assert not errors, (doc["kind"], errors)
    broken = json.loads(json.dumps(DEPLOYMENT))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = 1
    schema = schemas[("apps/v1", "Deployment")]
    assert any("runAsNonroot" in e.message for e in Draft4Validator(schema).iter_errors(broken))


def test_the_check_before_a_namespace_delete_reads_metadata_only(cluster: Cluster) -> None:
    """The one list of Secrets the role allows asks for PartialObjectMetadata: their data
    never leaves the API server (1.20 serves it; the test above shows the answer)."""
    cluster.admin.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rbac-foreign"}})
    cluster.admin.request("POST", "/api/v1/namespaces/rbac-foreign/secrets", body={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "theirs"},
        "stringData": {"key": "value"}})
    # the Accept headers as they go over the wire: through the test proxy, with the token
    token = json.loads(cluster.kubeconfig.read_text())["users"][0]["user"]["token"]
    proxy = FaultProxy(cluster.server.host).start()
    try:
        runtime = KubernetesRuntime(kubeconfig=proxy.kubeconfig(cluster.audit.parent, token))
        try:
            assert "Secret/theirs" in runtime.foreign_objects("rbac-foreign")
        finally:
            runtime.close()
    finally:
        proxy.stop()
    accepts = {seen.path: seen.accept for seen in proxy.seen}
    assert accepts["/api/v1/namespaces/rbac-foreign/secrets"] == METADATA_LIST
    assert all(accept == METADATA_LIST for accept in accepts.values()), accepts
