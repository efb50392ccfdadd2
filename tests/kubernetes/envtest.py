"""A real Kubernetes API server for tests: etcd + kube-apiserver on loopback.

The way controller-runtime's envtest does it (see ../shared/envtest/README.md):
no kubelet, scheduler or controllers, so Deployments get no pods and
namespaces are never finalized; tests set status themselves. v1.20 serves
only its secure port, so the server gets a token file, AlwaysAllow, one RSA
key for service accounts, and the kubeconfig skips TLS verification.

Ports come from binding port 0 and are handed to the processes, so another
process may take one in between: start-up is retried a few times with fresh
ports. Each process runs in its own process group, killed on stop().

The API server writes an audit log (one JSON event per request, level
Metadata): tests count requests from it (audit.py), never by patching the client.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("etcd", "kube-apiserver")
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
"""
START_DEADLINE = 60.0  # seconds: CI has two cores and other tests running
ATTEMPTS = 3


class EnvtestError(RuntimeError):
    """The API server did not come up; the message carries its log tail."""


def find_assets(test_file: Path) -> Path | None:
    """$KUBEBUILDER_ASSETS, else shared/envtest in a folder above the repo (the workspace
    next to it, or further up for a worktree in a subfolder such as <workspace>/wt/NAME);
    None if absent."""
    candidates = []
    if os.environ.get("KUBEBUILDER_ASSETS"):
        candidates.append(Path(os.environ["KUBEBUILDER_ASSETS"]))
    # tests/kubernetes/<file> -> parents[2] is the repo, parents[3] the workspace
    candidates += [parent / "shared" / "envtest" for parent in test_file.resolve().parents[3:]]
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in BINARIES):
            return folder
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rsa_key(path: Path) -> None:
    """One RSA key signs and verifies service-account tokens (openssl: no extra dependency)."""
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True,
                   capture_output=True, timeout=60)


@dataclass
class Envtest:
    """A running etcd + kube-apiserver; `kubeconfig` points the official client at it."""

    assets: Path
    workdir: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    authorization: str = "AlwaysAllow"  # "RBAC" for tests of permissions
    extra_args: tuple[str, ...] = ()  # more kube-apiserver flags (e.g. an audit log)
    kubeconfig: Path = field(init=False)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kubeconfig = self.workdir / "kubeconfig"
        self.audit_log = self.workdir / "audit.log"

    @property
    def host(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start both processes, retrying with fresh ports; EnvtestError with logs on failure."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        _rsa_key(self.workdir / "sa.key")
        (self.workdir / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        (self.workdir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        errors = []
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._start_once(attempt)
                self._write_kubeconfig()
                return
            except EnvtestError as exc:
                errors.append(str(exc))
                self.stop()
        raise EnvtestError("\n\n".join(errors))

    def _start_once(self, attempt: int) -> None:
        run = self.workdir / f"run{attempt}"
        run.mkdir()
        client, peer = free_port(), free_port()
        etcd = self._spawn(run / "etcd.log", [
            str(self.assets / "etcd"), "--data-dir", str(run / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer}",
        ])
        self.port = free_port()
        key = self.workdir / "sa.key"
        apiserver = self._spawn(run / "apiserver.log", [
            str(self.assets / "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{client}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(self.port), "--cert-dir", str(run / "certs"),
            "--token-auth-file", str(self.workdir / "tokens.csv"),
            "--authorization-mode", self.authorization,
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", str(key),
            "--service-account-signing-key-file", str(key),
            "--service-cluster-ip-range", "10.0.0.0/24",
            "--disable-admission-plugins", "ServiceAccount",
            "--allow-privileged=true",
            "--audit-policy-file", str(self.workdir / "audit-policy.yaml"),
            "--audit-log-path", str(self.audit_log), "--audit-log-mode", "blocking",
            "--audit-log-maxsize", "0", *self.extra_args,
        ])
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            for name, proc, log in (("etcd", etcd, run / "etcd.log"),
                                    ("kube-apiserver", apiserver, run / "apiserver.log")):
                if proc.poll() is not None:
                    raise EnvtestError(f"{name} exited with {proc.returncode}:\n{_tail(log)}")
            if self._ready():
                return
            time.sleep(0.1)  # polling /readyz: the condition is checked each round
        raise EnvtestError(f"kube-apiserver not ready after {START_DEADLINE:.0f}s:\n"
                           f"{_tail(run / 'apiserver.log')}")

    def _spawn(self, log: Path, argv: list[str]) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self._procs.append(proc)
        return proc

    def _ready(self) -> bool:
        request = urllib.request.Request(f"{self.host}/readyz",
                                         headers={"Authorization": f"Bearer {self.token}"})
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(request, context=context, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "envtest",
            "clusters": [{"name": "envtest", "cluster": {
                "server": self.host, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "envtest",
                          "context": {"cluster": "envtest", "user": "admin"}}],
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))

    def stop(self) -> None:
        """Kill each process group (apiserver first), then wait for them."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._procs.clear()

    def cleanup(self) -> None:
        """Stop, and remove the working directory; $ENVTEST_KEEP_AUDIT names a file to keep
        the audit log in (e.g. to list the requests a whole test session made)."""
        self.stop()
        keep = os.environ.get("ENVTEST_KEEP_AUDIT")
        if keep and self.audit_log.exists():
            shutil.copyfile(self.audit_log, keep)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
