#!/usr/bin/env python3
"""Kubernetes benchmark: `reconciler apply` against a real API server, versus kubectl.

    python benchmarks/bench_kubernetes.py [--sizes 2000,10000]

For each size N, benchmarks/generate.py makes a repo of N reservations; an
envtest API server (etcd + kube-apiserver, as tests/kubernetes runs them,
with an audit log) gets Nodes roomy enough for every replica. Then, each on a
fresh server:
- reconciler: `reconciler apply --runtime kubernetes --auto-approve` from an
  empty cluster, then again (a no-op: nothing to change);
- kubectl (when /usr/bin/kubectl or one on PATH exists): `kubectl apply
  --server-side -R -f DIR` of `reconciler render`'s output of the same repo
  (PodDisruptionBudgets as policy/v1beta1, what this 1.20 server serves), from
  empty, then again.
Wall time of each whole process; requests counted from the server's audit
log by user agent (the reconciler's `reconciler/...`, kubectl's `kubectl/...`).

`rows()` returns one dict per (what, n): {"what", "n", "reconciler_seconds",
"reconciler_requests", "kubectl_seconds", "kubectl_requests"} (kubectl's None
when it is absent), or [] when the envtest binaries are absent.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "kubernetes"))

SIZES = (2000, 10000)
SETTINGS = "  kubernetes:\n    namespacePrefix: bench-\n"
MARKER_AGENT = "reconciler-bench"


def kubectl() -> str | None:
    found = shutil.which("kubectl")
    if found:
        return found
    return "/usr/bin/kubectl" if os.access("/usr/bin/kubectl", os.X_OK) else None


def generate(n: int, out: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"),
                    "--reservations", str(n), "--out", str(out)], check=True,
                   capture_output=True)
    settings = out / "settings.yaml"
    settings.write_text(settings.read_text().rstrip("\n") + "\n" + SETTINGS)
    return out


class Server:
    """A fresh envtest API server with roomy Nodes, and its audit log."""

    def __init__(self, assets: Path, work: Path, n: int) -> None:
        from audit import Audit
        from envtest import Envtest
        from kubekit import make_node

        from reconciler.runtimes.kubernetes.client import Api, connect

        self.env = Envtest(assets, work)
        self.env.start()
        client = connect(self.env.kubeconfig)
        client.user_agent = MARKER_AGENT
        self.api = Api(client)
        roomy = {"cpu": "256", "memory": "1Ti", "pods": "2k"}
        for i in range(max(2, n // 200)):
            make_node(self.api, f"cpu-{i:03d}", roomy, {})
        for i in range(max(2, n // 400)):
            make_node(self.api, f"gpu-{i:03d}", {**roomy, "nvidia.com/gpu": "2k"}, {})
        self.audit = Audit(self.env.audit_log, self.api)

    def run(self, argv: list[str], agent: str) -> tuple[float, int]:
        """(seconds, requests of `agent`) of one process; it must succeed."""
        start = self.audit.mark()
        began = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                              env=dict(os.environ, NO_COLOR="1"))
        seconds = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])}... exited {done.returncode}:\n"
                               f"{(done.stdout + done.stderr)[-3000:]}")
        return seconds, len(self.audit.requests(start, self.audit.mark(), user_agent=agent))

    def stop(self) -> None:
        self.api.close()
        self.env.cleanup()


def reconciler_runs(assets: Path, repo: Path, work: Path, n: int) -> list[tuple[float, int]]:
    from reconciler.runtimes.kubernetes.client import USER_AGENT

    server = Server(assets, work / "env-reconciler", n)
    try:
        argv = [sys.executable, "-m", "reconciler", "apply", str(repo), "--runtime",
                "kubernetes", "--kubeconfig", str(server.env.kubeconfig), "--state",
                str(work / "state"), "--auto-approve", "--wait-timeout", "1s"]
        return [server.run(argv, USER_AGENT), server.run(argv, USER_AGENT)]
    finally:
        server.stop()


def kubectl_runs(assets: Path, repo: Path, work: Path, n: int,
                 binary: str) -> list[tuple[float, int]]:
    out = work / "rendered"
    subprocess.run([sys.executable, "-m", "reconciler", "render", str(repo), "--out", str(out),
                    "--pdb-api", "policy/v1beta1"], check=True, capture_output=True, cwd=ROOT)
    server = Server(assets, work / "env-kubectl", n)
    try:
        argv = [binary, "--kubeconfig", str(server.env.kubeconfig), "apply", "--server-side",
                "-R", "-f", str(out)]
        return [server.run(argv, "kubectl"), server.run(argv, "kubectl")]
    finally:
        server.stop()


def rows(sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    from envtest import find_assets

    assets = find_assets(ROOT / "tests" / "kubernetes" / "envtest.py")
    if assets is None:
        return []
    binary = kubectl()
    result: list[dict[str, Any]] = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"reconciler-kbench-{n}-") as tmp:
            work = Path(tmp)
            repo = generate(n, work / "repo")
            ours = reconciler_runs(assets, repo, work, n)
            theirs = kubectl_runs(assets, repo, work, n, binary) if binary else [None, None]
        for what, mine, other in (("apply from empty", ours[0], theirs[0]),
                                  ("apply, no-op", ours[1], theirs[1])):
            result.append({"what": what, "n": n, "reconciler_seconds": round(mine[0], 2),
                           "reconciler_requests": mine[1],
                           "kubectl_seconds": round(other[0], 2) if other else None,
                           "kubectl_requests": other[1] if other else None})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="reservations per run, comma-separated (default 2000,10000)")
    args = parser.parse_args()
    found = rows(tuple(int(s) for s in args.sizes.split(",")))
    if not found:
        print("envtest binaries (etcd, kube-apiserver) not found: set KUBEBUILDER_ASSETS")
        return
    print("| what | reservations | reconciler s | requests | kubectl s | requests | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in found:
        ratio = (f"{row['reconciler_seconds'] / row['kubectl_seconds']:.2f}"
                 if row["kubectl_seconds"] else "-")
        print(f"| {row['what']} | {row['n']} | {row['reconciler_seconds']:.2f} | "
              f"{row['reconciler_requests']} | {row['kubectl_seconds'] or '-'} | "
              f"{row['kubectl_requests'] if row['kubectl_requests'] is not None else '-'} | "
              f"{ratio} |")


if __name__ == "__main__":
    main()
