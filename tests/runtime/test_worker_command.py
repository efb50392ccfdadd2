"""`reconciler worker`: the engine container's command, configured from the environment.

Run as a kubelet runs a container: the real command, only RECONCILER_* variables,
its readiness probe polled over HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

import pytest
from localkit import invoke, make_site, sha256, wait_for

from reconciler.runtimes.local import worker

# load() waits for a file the test creates, so "still warming" is a state the test
# holds for as long as it likes instead of a race against a fast warm-up.
GATED = '''
import json, os, time

def load(path):
    gate = os.path.join(os.path.dirname(__file__), "warm.gate")
    while not os.path.exists(gate):
        time.sleep(0.01)
    with open(path) as handle:
        return json.load(handle)

def apply(input, model):
    return {"sum": sum(input.get("values", [])) * model["factor"]}
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reconciler_bin() -> str:
    found = shutil.which("reconciler", path=str(Path(sys.executable).parent))
    assert found, "the reconciler console script is installed next to this Python"
    return found


def health(port: int) -> tuple[int, dict[str, object]] | None:
    """(status, body) of GET /healthz; None while nothing listens."""
    try:
        with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status, json.loads(response.read())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (URLError, ConnectionError):
        return None


@contextmanager
def container(site_root: Path, code: str | None = None,
              **env: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`reconciler worker` with the env a rendered Deployment gives its engine container
    (data and code roots mapped to local folders, as volumes would be)."""
    site = make_site(site_root)
    if code is not None:
        site.write_code(text=code)
    port = free_port()
    values = {"RECONCILER_ENTRYPOINT": "adder:apply",
              "RECONCILER_MODEL_PATH": "data://acme/models/m1.json",
              "RECONCILER_MODEL_DIGEST": sha256(site.data / "acme" / "models" / "m1.json"),
              "RECONCILER_POOL_ID": "alice.acme.adder.aaaaaaaaaaaa",
              "RECONCILER_DATA_ROOT": str(site.data), "RECONCILER_CODE_ROOT": str(site.src),
              "RECONCILER_LISTEN": f"127.0.0.1:{port}", **env}
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    proc = subprocess.Popen([reconciler_bin(), "worker"], env={**base, **values},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_warming_answers_503_then_ready_serves_invocations(tmp_path: Path) -> None:
    with container(tmp_path, code=GATED) as (proc, port):
        status = wait_for(lambda: health(port), message="the worker to listen")
        assert status[0] == 503 and status[1]["state"] == "warming"
        (tmp_path / "src" / "warm.gate").touch()
        wait_for(lambda: (health(port) or (0,))[0] == 200, message="/healthz to answer 200")
        assert invoke(port, {"values": [2, 3]})["output"] == {"sum": 5}
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_a_wrong_digest_never_becomes_ready(tmp_path: Path) -> None:
    with container(tmp_path, RECONCILER_MODEL_DIGEST="sha256:" + "0" * 64) as (proc, port):
        seen: list[int] = []

        def exited() -> bool:
            answer = health(port)
            if answer is not None:
                seen.append(answer[0])
            return proc.poll() is not None

        wait_for(exited, message="the worker to give up")
        assert proc.returncode == worker.WARMUP_FAILED
        assert 200 not in seen
        assert proc.stderr is not None
        assert b"digest mismatch" in proc.stderr.read()


def test_missing_settings_are_named_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    done = subprocess.run([reconciler_bin(), "worker"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "RECONCILER_ENTRYPOINT" in done.stderr and "RECONCILER_POOL_ID" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("listen", ["8080", "localhost:", ":80", "host:99999"])
def test_a_malformed_listen_address_is_refused(listen: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        worker.parse_listen(listen)


def test_environment_defaults_follow_the_spec() -> None:
    argv = worker.args_from_env({"RECONCILER_ENTRYPOINT": "m:f", "RECONCILER_MODEL_PATH": "p",
                                 "RECONCILER_MODEL_DIGEST": "d", "RECONCILER_POOL_ID": "i"})
    options = dict(zip(argv[::2], argv[1::2], strict=True))
    assert options["--data-root"] == "/data"
    assert options["--listen"] == "0.0.0.0:8080"
    assert worker.parse_listen("[::1]:8080") == ("::1", 8080)
