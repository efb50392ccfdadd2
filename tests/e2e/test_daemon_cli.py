"""`reconciler daemon` as a user runs it: watched directories, --once, one daemon per state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from gitops_harness import (  # noqa: E402
    GIT_ENV,
    REPO_ROOT,
    DaemonProcess,
    pools_ready,
    write_config,
)

pytestmark = pytest.mark.slow


def once(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "daemon", "--once", "--state", str(state), *args],
        capture_output=True, text=True, env={**os.environ, **GIT_ENV}, cwd=REPO_ROOT,
        timeout=90)


def test_a_plain_directory_is_watched_and_edits_are_applied(tmp_path: Path) -> None:
    config = tmp_path / "config"
    write_config(config)
    daemon = DaemonProcess(["--repo", str(config), "--interval", "10m", "--log-format", "json"],
                           tmp_path / "state").started()
    try:
        status = daemon.wait_status(lambda s: pools_ready(s, 1), 20, "one warm replica")
        assert status["mode"] == "directory" and status["branch"] is None
        assert status["lastAppliedCommit"].startswith("dir:")
        assert daemon.get("/readyz")[0] == 200

        second = DaemonProcess(["--repo", str(config)], tmp_path / "state")
        assert second.proc.wait(30) == 1
        assert "locked by `reconciler daemon`" in second.output()
        assert f"pid {daemon.proc.pid}" in second.output()

        write_config(config, replicas=2)
        status = daemon.wait_status(lambda s: s["history"][0]["trigger"].startswith("file change")
                                    and s["pools"]["desired"] == 2, 10, "the edit applied")
        daemon.wait_status(lambda s: pools_ready(s, 2), 20, "two warm replicas")
    finally:
        assert daemon.stop(signal.SIGINT) == 0, daemon.output()
    lines = [line for line in daemon.output().splitlines() if '"pass": ' in line]
    assert any('"msg": "pass applied"' in line and '"commit": "dir:' in line for line in lines)


def test_once_exits_with_the_pass_result(tmp_path: Path) -> None:
    config = tmp_path / "config"
    write_config(config)
    done = once("--repo", str(config), state=tmp_path / "state")
    assert done.returncode == 0, done.stderr
    assert "pass applied" in done.stderr
    assert not (tmp_path / "state" / "daemon.json").exists()

    write_config(config, replicas=0)
    done = once("--repo", str(config), state=tmp_path / "state")
    assert done.returncode == 1
    assert "pass invalid" in done.stderr and "replicas" in done.stderr


def test_the_project_examples_are_watched_as_a_directory(tmp_path: Path) -> None:
    """`make run` points at config-examples/, a subdirectory of this checkout."""
    done = once("--repo", "config-examples", state=tmp_path / "state")
    assert "watching directory" in done.stderr
    assert "not its top level" in done.stderr or "outside any Git" in done.stderr
    assert done.returncode == 0, done.stderr


def test_bad_options_are_user_errors(tmp_path: Path) -> None:
    done = once("--repo", str(tmp_path / "missing"), state=tmp_path / "state")
    assert done.returncode == 1 and "no such directory" in done.stderr
    done = once("--repo", str(tmp_path), "--interval", "soon", state=tmp_path / "state")
    assert done.returncode == 1 and "--interval" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_listen_address_or_state_directory_is_a_user_error(tmp_path: Path) -> None:
    config = tmp_path / "config"
    write_config(config)
    for listen, message in (("127.0.0.1:99999", "the port must be 0..65535, got 99999"),
                            ("nowhere", "expected HOST:PORT, got 'nowhere'")):
        done = once("--repo", str(config), "--listen", listen, state=tmp_path / "state")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert f"Invalid value for '--listen': {message}" in done.stderr
    (tmp_path / "file").write_text("not a directory\n")
    done = once("--repo", str(config), state=tmp_path / "file" / "state")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot create the state directory: Not a directory" in done.stderr
