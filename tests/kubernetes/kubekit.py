"""Helpers for the Kubernetes tests: a small real config repo, raw API calls, status patches.

The config: acme (organization, member alice) owns acme/sentiment (cpu) and
acme/vision (gpu, 1 per replica); alice reserves sentiment, bob reserves
vision; alice has an account CapacityLimit. Settings.kubernetes uses a
namespace prefix unique to the test, so tests sharing one API server never
see each other's namespaces by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from reconciler.config.loader import load_config
from reconciler.desired import compile_config
from reconciler.plan.planner import make_plan
from reconciler.plan.plans import Plan
from reconciler.runtimes.kubernetes.client import Api
from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime
from reconciler.states import DesiredState

COMMITS = {"1.0.0": "a1" * 20, "1.1.0": "b2" * 20}
HEAD = "apiVersion: reconciler/v1\n"
ENV = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}


def doc(kind: str, name: str, spec: str) -> str:
    return f"{HEAD}kind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}"


def write_config(root: Path, prefix: str, *, sentiment_replicas: int = 2, vision: bool = True,
                 image: str = "registry.example/acme/sentiment", model: str = "m1",
                 extra_users: int = 0, max_engines: int = 5, alice: bool = True,
                 new_version: bool = False,
                 gpu_tolerations: str = "[{key: nvidia.com/gpu, operator: Exists, "
                                        "effect: NoSchedule}]") -> Path:
    """Write the config repo into `root` (overwriting); `extra_users` more users each
    reserve one sentiment replica (a config with many pools)."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data" / "acme" / "models" / f"{model}.json"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(json.dumps({"model": model}))
    digest = "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()
    users = ["alice", "bob", *(f"user{i}" for i in range(extra_users))]
    accounts = [doc("Account", "acme", "  type: organization\n  members: [alice]\n")]
    accounts += [doc("Account", u, "  type: user\n") for u in users]
    (root / "accounts.yaml").write_text("---\n".join(accounts))
    version = "".join(
        f"    - commit: {COMMITS[label]}\n      version: {label}\n      visibility: public\n"
        f"      compiledAt: \"2026-11-0{day}T10:00:00Z\"\n      model:\n"
        f"        path: data://acme/models/{model}.json\n        digest: {digest}\n"
        for day, label in enumerate(("1.0.0", "1.1.0") if new_version else ("1.0.0",), 1))
    algorithms = [
        doc("Algorithm", "sentiment", "  owner: acme\n  processor: cpu\n"
            "  resources: {cpu: 100m, memory: 64Mi, gpu: 0}\n"
            f"  image: {image}\n  entrypoint: sentiment:apply\n  versions:\n{version}"),
        doc("Algorithm", "vision", "  owner: acme\n  processor: gpu\n"
            "  resources: {cpu: 500m, memory: 256Mi, gpu: 1}\n"
            f"  image: registry.example/acme/vision\n  entrypoint: vision:apply\n"
            f"  versions:\n{version}"),
    ]
    (root / "algorithms.yaml").write_text("---\n".join(algorithms))
    reservations = [doc("Reservation", "alice-sentiment",
                        "  caller: alice\n  algorithm: acme/sentiment\n"
                        f"  versionType: latest-public\n  replicas: {sentiment_replicas}\n")
                    ] if alice else []
    if vision:
        reservations.append(doc("Reservation", "bob-vision",
                                "  caller: bob\n  algorithm: acme/vision\n"
                                "  versionType: latest-public\n  replicas: 1\n"))
    reservations += [doc("Reservation", f"user{i}-sentiment",
                         f"  caller: user{i}\n  algorithm: acme/sentiment\n"
                         "  versionType: latest-public\n  replicas: 1\n")
                     for i in range(extra_users)]
    (root / "reservations.yaml").write_text("---\n".join(reservations))
    (root / "limits.yaml").write_text(doc(
        "CapacityLimit", "alice-capacity",
        f"  account: alice\n  maxEngines: {max_engines}\n  maxGpus: 2\n"))
    (root / "settings.yaml").write_text(doc(
        "Settings", "settings",
        f"  kubernetes:\n    namespacePrefix: {prefix}\n"
        "    gpuNodeSelector: {accelerator: nvidia}\n"
        f"    gpuTolerations: {gpu_tolerations}\n"))
    return root


def desired_of(root: Path) -> tuple[DesiredState, Any]:
    config = load_config(root)
    return compile_config(config), config.settings


def plan_for(root: Path, runtime: KubernetesRuntime) -> Plan:
    desired, settings = desired_of(root)
    return make_plan(desired, runtime.observe(), runtime.nodes(), runtime="kubernetes",
                     safety=settings.safety)


def apply_all(plan: Plan, runtime: KubernetesRuntime) -> None:
    assert plan.applyable, [str(e) for e in plan.errors]
    for action in plan.actions:
        runtime.apply(action)


def set_deployment_status(api: Api, namespace: str, name: str, ready: int) -> None:
    """What the Deployment controller would write: observedGeneration current, `ready`
    replicas ready and updated."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    generation = api.get(path)["metadata"]["generation"]
    api.request("PATCH", f"{path}/status", content_type="application/merge-patch+json",
                body={"status": {"observedGeneration": generation, "replicas": ready,
                                 "readyReplicas": ready, "updatedReplicas": ready,
                                 "availableReplicas": ready}})


def reconciler(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process (stdin not a TTY)."""
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True,
                          text=True, input="", timeout=timeout, env=ENV)


NOT_READY = "node.kubernetes.io/not-ready"
READY = [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]


def make_node(api: Api, name: str, allocatable: dict[str, str], labels: dict[str, str],
              taints: list[dict[str, str]] | None = None, **status: Any) -> None:
    """A Node object with allocatable capacity, as a kubelet and the node lifecycle
    controller would leave it: status (allocatable, Ready unless `conditions` say
    otherwise) through /status, and the not-ready taint that this API server's admission
    puts on every new Node replaced by `taints` (default: none)."""
    api.request("POST", "/api/v1/nodes", body={
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})
    api.request("PATCH", f"/api/v1/nodes/{name}/status",
                content_type="application/merge-patch+json",
                body={"status": {"capacity": allocatable, "allocatable": allocatable,
                                 "conditions": READY, **status}})
    api.request("PATCH", f"/api/v1/nodes/{name}", content_type="application/merge-patch+json",
                body={"spec": {"taints": taints or None}})
