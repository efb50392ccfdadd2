"""Algorithm code that prints (at import, in load(), per call) never breaks a worker's report.

Common in ML code. A worker reports on its own channel (a pipe its parent
passes, or the original stdout of an engine container); the algorithm's
stdout, Python's and file descriptor 1 alike, goes to the worker's log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from configkit import reconciler, write_config  # noqa: E402
from conftest_local import Local, local_fixture  # noqa: E402,F401
from localkit import make_site, sha256, wait_for  # noqa: E402

pytestmark = pytest.mark.slow

CHATTY = '''
import json, os, sys
print("importing the chatty model")
os.write(1, b"a C library writes to fd 1\\n")

def load(path):
    print("loading", path)
    sys.stdout.write("progress: 100%\\n")
    with open(path) as handle:
        return json.load(handle)

def apply(input, model):
    print("called with", input)
    return {"sum": sum(input.get("values", [])) * model["factor"]}
'''


def test_a_cold_start_of_an_algorithm_that_prints_serves_the_call(local: Local,
                                                                   tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    (config / "src" / "adder.py").write_text(CHATTY)
    state = ["--state", str(local.site.state)]
    assert reconciler("apply", str(config), *state, "--auto-approve").returncode == 0
    call = reconciler("invoke", "--as", "bob", "acme/adder/1.0.0", '{"values": [4, 5]}', *state)
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout) == {"sum": 9}
    assert call.stderr.startswith("cold, ")


def test_a_replica_that_prints_becomes_ready_and_its_output_is_logged(local: Local,
                                                                      tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    (config / "src" / "adder.py").write_text(CHATTY)
    state = ["--state", str(local.site.state)]
    assert reconciler("apply", str(config), *state, "--auto-approve").returncode == 0
    local.agent()
    local.runtime.wait_ready("alice.acme.adder.aaaaaaaaaaaa", 1, timeout=15)
    call = reconciler("invoke", "--as", "alice", "acme/adder", '{"values": [1]}', *state)
    assert call.returncode == 0 and call.stderr.startswith("warm, ")
    [log] = (local.site.state / "logs").rglob("*.log")
    wait_for(lambda: "called with" in log.read_text(), message="the call's print in the log")
    text = log.read_text()
    assert "importing the chatty model" in text and "a C library writes to fd 1" in text
    assert "progress: 100%" in text


def test_an_engine_container_reports_on_stdout_and_logs_the_algorithm_on_stderr(
        tmp_path: Path) -> None:
    site = make_site(tmp_path)
    site.write_code(text=CHATTY)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")},
           "RECONCILER_ENTRYPOINT": "adder:apply", "RECONCILER_POOL_ID": "p",
           "RECONCILER_MODEL_PATH": "data://acme/models/m1.json",
           "RECONCILER_MODEL_DIGEST": sha256(site.data / "acme" / "models" / "m1.json"),
           "RECONCILER_DATA_ROOT": str(site.data), "RECONCILER_CODE_ROOT": str(site.src),
           "RECONCILER_LISTEN": "127.0.0.1:0"}
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "worker"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        report = json.loads(proc.stdout.readline())  # the first line is the report
        assert report["ready"] is True and report["port"] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        rest, errors = proc.stdout.read(), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert rest == b""
    assert b"importing the chatty model" in errors and b"progress: 100%" in errors
