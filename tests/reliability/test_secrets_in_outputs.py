"""Secrets never appear in any output (a family that already holds, plus the argv fix).

A daemon runs with a password in its repo URL, a Git token and a webhook
secret, and fails to fetch; `plan` and `status` run against a cluster with
a token in the kubeconfig, and `plan --out` signs with the state's key.
Every secret (and its base64 form) is looked for in: logs, errors, /status,
/metrics, the state directory's files, plan output and plan files, and the
argv of every process on the machine (/proc/*/cmdline) while they run.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from configkit import write_config
from localkit import wait_for
from relkit import cli, env, git_http_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from gitops_harness import http  # noqa: E402

pytestmark = pytest.mark.slow

PASSWORD = "pw-Zq81-never-shown"
TOKEN = "ghp_tokenNeverShown0042"
HOOK = "hook-secret-never-shown"
KUBE = "kube-token-never-shown-77"


def variants(*secrets: str) -> list[str]:
    found = list(secrets)
    for secret in secrets:
        found.append(base64.b64encode(secret.encode()).decode())
    found.append(base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode())
    found.append(base64.b64encode(f"deploy:{PASSWORD}".encode()).decode())
    return found


def argvs() -> str:
    text = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text.append((entry / "cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                continue
    return "\n".join(text)


def files_under(root: Path) -> str:
    return "\n".join(p.read_bytes().decode(errors="replace")
                     for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_daemon_outputs_hold_no_secret(tmp_path: Path) -> None:
    state = tmp_path / "state"
    outputs: list[str] = []
    with git_http_server() as port:
        url = f"http://deploy:{PASSWORD}@127.0.0.1:{port}/org/config.git"
        daemon = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "daemon", "--state", str(state), "--listen",
             "127.0.0.1:0", "--log-format", "json", "--interval", "1h"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            env=env(RECONCILER_REPO=url, RECONCILER_GIT_TOKEN=TOKEN,
                    RECONCILER_WEBHOOK_SECRET=HOOK))
        try:
            info = wait_for(lambda: (state / "daemon.json").exists()
                            and json.loads((state / "daemon.json").read_text() or "{}"),
                            timeout=20, message="daemon.json")
            base = info["url"]
            status = wait_for(lambda: (lambda s: s if s["history"] else None)(
                json.loads(http(base + "/status")[1])), timeout=20, message="a pass")
            assert status["history"][0]["result"] == "error"
            outputs.append(argvs())
            for path in ("/status", "/metrics", "/healthz", "/readyz"):
                outputs.append(http(base + path)[1].decode())
            outputs.append(str(http(base + "/webhook", data=b"{}",
                                    headers={"X-GitHub-Event": "push"})))
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
            assert daemon.stdout is not None
            outputs.append(daemon.stdout.read().decode(errors="replace"))
            daemon.stdout.close()
    outputs.append(files_under(state))
    text = "\n".join(outputs)
    assert "cannot fetch branch 'main'" in text  # the error is reported, without its secrets
    for secret in variants(PASSWORD, TOKEN, HOOK):
        assert secret not in text, f"{secret!r} leaked"


def test_cli_outputs_hold_no_secret(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": KUBE}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
    config = write_config(tmp_path / "config")
    state = tmp_path / "state"
    outputs = []
    for args in (("plan", str(config), "--runtime", "kubernetes", "--kubeconfig",
                  str(kubeconfig), "--state", str(state)),
                 ("status", "--runtime", "kubernetes", "--kubeconfig", str(kubeconfig)),
                 ("plan", str(config), "--state", str(state), "--out",
                  str(tmp_path / "plan.json"))):
        done = cli(*args, timeout=90)
        outputs += [done.stdout, done.stderr]
    key = (state / "plan.key").read_text().strip()
    assert len(key) == 64 and oct(os.stat(state / "plan.key").st_mode & 0o777) == "0o600"
    outputs.append((tmp_path / "plan.json").read_text())
    text = "\n".join(outputs)
    assert "127.0.0.1:1" in text or "kubernetes" in text  # the cluster errors are reported
    for secret in variants(KUBE, key):
        assert secret not in text, f"{secret!r} leaked"
