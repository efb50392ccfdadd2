"""The Deployment's container, run as a process: its args and env exactly as the kubelet
would expand them from deploy/base (the ConfigMap's values, the secrets, the downward
API, `$(VAR)` in args), with four stand-ins for what only a cluster has: a local Git
repository for `repo`, the local runtime for kubernetes, a temporary --state and a free
loopback port. The probes answer, and the UI token from the optional `reconciler-ui`
secret closes /status while /healthz, /readyz stay open for the kubelet."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from deploykit import ROOT, by_kind

sys.path.insert(0, str(ROOT / "tests" / "runtime"))
from localkit import wait_for  # noqa: E402

NAMESPACE = "reconciler-system"
UI_TOKEN = "ui-token-of-the-test-0123456789"


def container_process(config: dict[str, str], secrets: dict[tuple[str, str], str],
                      tmp: Path) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of the Deployment's container, expanded as the kubelet does."""
    [deployment] = by_kind("Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for item in container["env"]:
        source = item.get("valueFrom", {})
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "configMapKeyRef" in source:
            env[item["name"]] = config[source["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if (ref["name"], ref["key"]) in secrets:
                env[item["name"]] = secrets[ref["name"], ref["key"]]
            else:
                assert ref.get("optional") is True, f"{item['name']}: a required secret"
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[item["name"]] = deployment["metadata"]["namespace"]
        else:
            raise AssertionError(f"{item['name']}: a kind of env the test does not know")
    args = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), arg)
            for arg in container["args"]]
    stand_ins = {"--runtime=kubernetes": "--runtime=local",
                 "--state=/var/lib/reconciler": f"--state={tmp / 'state'}",
                 "--listen=0.0.0.0:8080": "--listen=127.0.0.1:0"}
    assert set(stand_ins) <= set(args), args
    args = [stand_ins.get(arg, arg) for arg in args]
    env.update(HOME=str(tmp / "home"), TMPDIR=str(tmp / "tmp"))
    for key in ("HOME", "TMPDIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "GIT_"))}
    return ([sys.executable, "-m", "reconciler", *args],
            {**base, **env, "GIT_CONFIG_NOSYSTEM": "1", "NO_COLOR": "1"})


def config_repository(path: Path) -> Path:
    shutil.copytree(ROOT / "config-examples", path)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-qm", "c"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)
    return path


def get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_container_as_deployed_serves_its_probes_and_closes_the_rest(
        tmp_path: Path) -> None:
    [configmap] = by_kind("ConfigMap")
    config: dict[str, Any] = dict(configmap["data"])
    assert config["path"] == "", "the test expects the base's config at the repository root"
    config["repo"] = str(config_repository(tmp_path / "platform-config"))
    argv, env = container_process(config, {("reconciler-ui", "token"): UI_TOKEN}, tmp_path)
    # the repository URL may carry user:password (README): the daemon reads it from env
    assert not any(config["repo"] in arg for arg in argv), argv
    log = (tmp_path / "daemon.log").open("w")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                               cwd=tmp_path)
    try:
        info = tmp_path / "state" / "daemon.json"

        def url() -> str | None:
            assert process.poll() is None, (tmp_path / "daemon.log").read_text()
            data = json.loads(info.read_text() or "{}") if info.exists() else {}
            return data.get("url") or None

        base = wait_for(url, timeout=30, message="daemon.json")
        assert get(f"{base}/healthz") == 200
        wait_for(lambda: get(f"{base}/readyz") == 200, timeout=60, message="/readyz 200")
        assert get(f"{base}/status") == 401
        assert get(f"{base}/status", UI_TOKEN) == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in text, text
    assert process.returncode == 0, text
