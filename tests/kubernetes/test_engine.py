"""The engine container of a rendered Deployment, run as a kubelet would run it.

`reconciler render` of the example config (with a dataVolume) gives each
pool's Deployment; the test takes its engine container's `command` and `env`
as they are and starts that process. What a kubelet and the image provide is
mapped to this machine: the data volume's mountPath to a copy of the
example's data/ (RECONCILER_DATA_ROOT, exactly the path the env names, is
rewritten to that copy), the image's code root (/code) to the example's
src/ (RECONCILER_CODE_ROOT, in the test's env only), and the container port
to a free local port (RECONCILER_LISTEN). The readiness probe is then polled
at the path and on the port the pod spec gives.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import pytest
import yaml
from kubekit import reconciler

EXAMPLES = Path(__file__).resolve().parents[2] / "config-examples"
DATA_VOLUME = "  kubernetes:\n    dataVolume: {persistentVolumeClaim: {claimName: models}}\n"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The example config's Deployments by pool id, rendered with a dataVolume."""
    root = tmp_path_factory.mktemp("engine") / "config"
    shutil.copytree(EXAMPLES, root)
    settings = root / "settings.yaml"
    settings.write_text(settings.read_text().replace("  kubernetes:\n", DATA_VOLUME))
    out = root.parent / "out"
    result = reconciler("render", str(root), "--out", str(out))
    assert result.returncode == 0, result.stderr
    found = {}
    for path in out.rglob("deployment-*.yaml"):
        obj = yaml.safe_load(path.read_text())
        found[obj["metadata"]["annotations"]["reconciler.io/pool"]] = obj
    return found


def engine(deployment: dict) -> tuple[dict, dict]:
    pod = deployment["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "engine")


@contextmanager
def run_as_kubelet(deployment: dict, data: Path, **override: str
                   ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start the engine container's command with its env (mapped as the module docstring
    says); the base URL its readiness probe and invocations go to."""
    pod, container = engine(deployment)
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", ())}
    volumes = {v["name"] for v in pod.get("volumes", ())}
    assert set(mounts) <= volumes
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["RECONCILER_DATA_ROOT"] in mounts.values()  # the data volume is there
    port = free_port()
    env.update(RECONCILER_DATA_ROOT=str(data), RECONCILER_CODE_ROOT=str(EXAMPLES / "src"),
               RECONCILER_LISTEN=f"127.0.0.1:{port}", **override)
    command = list(container["command"])
    command[0] = shutil.which(command[0], path=str(Path(sys.executable).parent)) or command[0]
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    proc = subprocess.Popen(command + list(container.get("args", ())), env={**base, **env},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def probe(url: str) -> int | None:
    try:
        with urlopen(url, timeout=2) as response:
            return int(response.status)
    except HTTPError as exc:
        return exc.code
    except (URLError, ConnectionError):
        return None


def readiness_url(deployment: dict, base: str) -> str:
    _, container = engine(deployment)
    check = container["readinessProbe"]["httpGet"]
    assert check["port"] == int(container["ports"][0]["containerPort"])
    return f"{base}{check['path']}"


def test_the_rendered_engine_warms_passes_readiness_and_answers(rendered: dict[str, dict],
                                                                tmp_path: Path) -> None:
    deployment = rendered["alice.acme.sentiment.44c3e94e22e5"]  # acme/sentiment 1.1.0
    data = tmp_path / "data"  # the volume, as a kubelet would mount it
    shutil.copytree(EXAMPLES / "data", data)
    with run_as_kubelet(deployment, data) as (proc, base):
        url = readiness_url(deployment, base)
        seen: list[int | None] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            seen.append(probe(url))
            if seen[-1] == 200:
                break
            time.sleep(0.05)
        assert seen[-1] == 200, (seen, proc.poll())
        assert set(seen) <= {None, 503, 200}  # nothing, warming, ready
        request = Request(f"{base}/invoke", data=json.dumps({"text": "what a great day"})
                          .encode(), headers={"Content-Type": "application/json"})
        with urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["output"]["score"] > 0, answer


def test_a_wrong_digest_never_becomes_ready(rendered: dict[str, dict], tmp_path: Path) -> None:
    deployment = rendered["alice.acme.sentiment.44c3e94e22e5"]
    data = tmp_path / "data"
    shutil.copytree(EXAMPLES / "data", data)
    (data / "acme" / "sentiment" / "words-1.1.json").write_text('{"positive": ["evil"], '
                                                                '"negative": []}')
    with run_as_kubelet(deployment, data) as (proc, base):
        url = readiness_url(deployment, base)
        seen = []
        while proc.poll() is None:
            seen.append(probe(url))
            time.sleep(0.05)
        assert proc.returncode == 2 and 200 not in seen
        assert proc.stderr is not None and b"digest" in proc.stderr.read()
