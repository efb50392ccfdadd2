"""A worker's warm-up refuses what it must never serve (in-process: the same functions)."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from localkit import invoke, make_site, sha256, wait_for

from reconciler.runtimes.local import worker
from reconciler.runtimes.local.procs import WORKER_SCRIPT
from reconciler.timestamps import now_rfc3339


def args_for(site_root: Path, **overrides: str) -> argparse.Namespace:
    site = make_site(site_root)
    values = {"model": "data://acme/models/m1.json", "data_root": str(site.data),
              "code_root": str(site.src), "entrypoint": "adder:apply",
              "digest": sha256(site.data / "acme" / "models" / "m1.json")}
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.mark.parametrize("url", ["data://acme/../../etc/passwd", "data://acme/./m/x.json",
                                 "data://acme/m", "file:///etc/passwd", "data://acme//x.json"])
def test_paths_outside_the_data_root_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(worker.WarmupError):
        worker.resolve_data_path(url, tmp_path)


def test_a_symlink_leaving_the_data_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data" / "acme" / "m").mkdir(parents=True)
    (tmp_path / "data" / "acme" / "m" / "x.json").symlink_to("/etc/hostname")
    with pytest.raises(worker.WarmupError, match="leaves the data root"):
        worker.resolve_data_path("data://acme/m/x.json", tmp_path / "data")


def test_digest_mismatch_fails_before_the_module_is_loaded(tmp_path: Path) -> None:
    args = args_for(tmp_path, digest="sha256:" + "0" * 64, entrypoint="missing:apply")
    with pytest.raises(worker.WarmupError, match="digest mismatch.*refusing to serve"):
        worker.warm_up(args)


@pytest.mark.parametrize(("entrypoint", "reason"), [
    ("nosuch:apply", "cannot import nosuch"), ("adder:nosuch", "has no function nosuch"),
    ("adder", "is not MODULE:FUNCTION")])
def test_bad_entrypoints_are_explained(tmp_path: Path, entrypoint: str, reason: str) -> None:
    with pytest.raises(worker.WarmupError, match=reason):
        worker.warm_up(args_for(tmp_path, entrypoint=entrypoint))


def test_missing_model_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(worker.WarmupError, match="does not exist"):
        worker.warm_up(args_for(tmp_path, model="data://acme/models/none.json"))


def test_a_model_path_that_is_a_fifo_is_named_as_one_and_never_opened(tmp_path: Path) -> None:
    (tmp_path / "data" / "acme" / "m").mkdir(parents=True)
    os.mkfifo(tmp_path / "data" / "acme" / "m" / "x.json")
    with pytest.raises(worker.WarmupError, match="is not a regular file"):
        worker.resolve_data_path("data://acme/m/x.json", tmp_path / "data")


def test_worker_script_imports_no_heavy_modules(tmp_path: Path) -> None:
    """Run as the agent runs it (a script, stdlib only), so a replica warms up quickly."""
    probe = f"""
import runpy, sys
sys.argv = ["worker.py", "--help"]
try:
    runpy.run_path({str(WORKER_SCRIPT)!r}, run_name="__main__")
except SystemExit:
    pass
heavy = ("yaml", "jsonschema", "rich", "deepdiff", "kubernetes", "reconciler")
print("HEAVY=" + ",".join(name for name in heavy if name in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY="


PARENT = """
import subprocess, sys, time
worker = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, start_new_session=True)
print(worker.pid, worker.stdout.readline().decode().strip(), flush=True)
time.sleep(3600)  # the call: the worker's stdin stays open until this process goes
"""


def cold_worker_args(site_root: Path) -> list[str]:
    """A worker without --db, as `invoke` starts one for a single call."""
    site = make_site(site_root)
    return [sys.executable, str(WORKER_SCRIPT), "--pool", "cold:test",
            "--entrypoint", "adder:apply", "--code-root", str(site.src),
            "--data-root", str(site.data), "--model", "data://acme/models/m1.json",
            "--digest", sha256(site.data / "acme" / "models" / "m1.json"), "--exit-with-stdin"]


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for init, which may never reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_a_cold_worker_goes_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *cold_worker_args(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid_text, report = parent.stdout.readline().split(" ", 1)
    worker_pid = int(pid_text)
    try:
        assert json.loads(report)["ready"] is True
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not running(worker_pid), timeout=10,
                 message="the orphaned cold worker to exit")
    finally:
        parent.stdout.close()
        if running(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


def test_a_cold_worker_closes_when_its_stdin_does_and_serves_until_then(tmp_path: Path
                                                                        ) -> None:
    worker_proc = subprocess.Popen(cold_worker_args(tmp_path), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert worker_proc.stdin is not None and worker_proc.stdout is not None
    try:
        port = json.loads(worker_proc.stdout.readline())["port"]
        assert invoke(port, {"values": [1, 2]})["output"]["sum"] == 3
        worker_proc.stdin.close()
        assert worker_proc.wait(timeout=10) == 0
    finally:
        worker_proc.stdout.close()
        if worker_proc.poll() is None:
            worker_proc.kill()
            worker_proc.wait()


def test_a_cold_worker_with_stdin_from_dev_null_serves_until_terminated(tmp_path: Path
                                                                        ) -> None:
    """No pipe to watch (how `invoke` starts it until it passes stdin=PIPE): keep serving."""
    worker_proc = subprocess.Popen(cold_worker_args(tmp_path), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert worker_proc.stdout is not None
    try:
        port = json.loads(worker_proc.stdout.readline())["port"]
        assert invoke(port, {"values": [4]})["output"]["sum"] == 4
        assert worker_proc.poll() is None
    finally:
        worker_proc.terminate()
        assert worker_proc.wait(timeout=10) == 0
        worker_proc.stdout.close()


def test_the_worker_and_the_stores_write_the_same_timestamps() -> None:
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    ours, theirs = worker.now(), now_rfc3339()
    assert pattern.match(ours) and pattern.match(theirs)
    parse = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (ours, theirs)]
    assert abs((parse[1] - parse[0]).total_seconds()) < 60


def warm_up_in_a_worker(site_root: Path, entrypoint: str, files: dict[str, str]
                        ) -> dict[str, object]:
    """Start a real worker on `entrypoint` with these files under its code root; its report."""
    site = make_site(site_root)
    for name, text in files.items():
        path = site.src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = subprocess.Popen(
        [sys.executable, str(WORKER_SCRIPT), "--pool", "p", "--entrypoint", entrypoint,
         "--code-root", str(site.src), "--data-root", str(site.data),
         "--model", "data://acme/models/m1.json",
         "--digest", sha256(site.data / "acme" / "models" / "m1.json"), "--exit-with-stdin"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        report: dict[str, object] = json.loads(proc.stdout.readline())
    finally:
        proc.stdin.close()  # the worker goes with its stdin
        proc.wait(timeout=10)
        proc.stdout.close()
    return report


APPLY = "def apply(input, model):\n    return 'from the code root'\n"


@pytest.mark.parametrize(("entrypoint", "files", "reason"), [
    ("signal:apply", {"signal.py": APPLY}, "'signal' is named like a Python standard-library"),
    ("shutil:rmtree", {}, "'shutil' is named like a Python standard-library"),
    ("yaml:safe_load", {}, "there is no yaml.py or yaml/ under the code root"),
    ("json:apply", {"json.py": APPLY}, "'json' is named like a Python standard-library"),
])
def test_an_entrypoint_loads_only_from_the_code_root(tmp_path: Path, entrypoint: str,
                                                     files: dict[str, str], reason: str) -> None:
    report = warm_up_in_a_worker(tmp_path, entrypoint, files)
    assert report["ready"] is False and reason in str(report["error"])


def test_packages_and_sibling_modules_load_from_the_code_root(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": "", "pkg/helper.py": "NAME = 'sibling'\n",
             "pkg/model.py": "from pkg import helper\n\ndef apply(input, model):\n"
                             "    return helper.NAME\n"}
    assert warm_up_in_a_worker(tmp_path, "pkg.model:apply", files)["ready"] is True
