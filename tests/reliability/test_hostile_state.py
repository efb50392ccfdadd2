"""A state directory with planted symlinks and FIFOs never writes through them.

The state directory is often shared or restored (a backup, /tmp, a volume another
user can write). A symlink planted there as STATE/apply.lock, STATE/daemon.json.tmp,
STATE/daemon-state.json.tmp or a worker's log made `apply`, the daemon and the agent
truncate or append to whatever it pointed at (as root: any file). Now those are
opened without following links: the lock refuses (exit 1, naming the file, nothing
applied), the daemon's files are written through fresh temporary files, and a
worker whose log is a link fails to start, saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from configkit import write_config
from relkit import clean, cli, pools_in

from reconciler.runtimes.local import procs

pytestmark = pytest.mark.slow

PRECIOUS = "precious, not to be written by the reconciler\n"


def victim(tmp_path: Path) -> Path:
    target = tmp_path / "victim.txt"
    target.write_text(PRECIOUS)
    return target


@pytest.mark.parametrize("lock", ["apply.lock", "daemon.lock"])
def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tmp_path: Path,
                                                                    lock: str) -> None:
    config = write_config(tmp_path / "config")
    state = tmp_path / "state"
    state.mkdir()
    target = victim(tmp_path)
    (state / lock).symlink_to(target)
    if lock == "apply.lock":
        done = cli("apply", str(config), "--state", str(state), "--auto-approve")
    else:
        done = cli("daemon", "--repo", str(config), "--state", str(state), "--once",
                   "--listen", "127.0.0.1:0")
    assert done.returncode == 1, clean(done)
    assert f"{lock}: it is a symbolic link; remove it" in clean(done)
    assert target.read_text() == PRECIOUS
    assert not (state / "state.db").exists() or not pools_in(state)


def test_a_fifo_as_the_lock_file_is_refused_without_hanging(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "apply.lock")
    done = cli("apply", str(config), "--state", str(state), "--auto-approve", timeout=30)
    assert done.returncode == 1, clean(done)
    assert "apply.lock is not a regular file; remove it" in clean(done)
    assert not (state / "state.db").exists() or not pools_in(state)


def test_the_daemon_never_writes_through_its_files_links(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    state = tmp_path / "state"
    state.mkdir()
    target = victim(tmp_path)
    for name in ("daemon.json.tmp", "daemon-state.json.tmp"):
        (state / name).symlink_to(target)
    done = cli("daemon", "--repo", str(config), "--state", str(state), "--once",
               "--listen", "127.0.0.1:0")
    assert done.returncode == 0, clean(done)
    assert target.read_text() == PRECIOUS
    assert '"lastAppliedCommit"' in (state / "daemon-state.json").read_text()
    assert not (state / "daemon-state.json").is_symlink()


@pytest.mark.parametrize("planted", ["log", "pool-directory", "logs-directory"])
def test_a_worker_log_that_is_a_link_is_refused(tmp_path: Path, planted: str) -> None:
    state = tmp_path / "state"
    log = state / "logs" / "alice.acme.adder.aaaaaaaaaaaa" / "1.log"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = victim(elsewhere)
    if planted == "log":
        log.parent.mkdir(parents=True)
        log.symlink_to(target)
    elif planted == "pool-directory":
        log.parent.parent.mkdir(parents=True)
        log.parent.symlink_to(elsewhere)
    else:
        state.mkdir()
        log.parent.parent.symlink_to(elsewhere)
    with pytest.raises(OSError, match="symbolic link"):
        procs.spawn([], log)
    assert target.read_text() == PRECIOUS
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.txt"]


@pytest.mark.parametrize("command", ["status", "plan", "apply", "agent"])
def test_a_store_that_is_a_fifo_is_an_error_not_an_empty_runtime(tmp_path: Path,
                                                                  command: str) -> None:
    """status said "No warm pools." (exit 0) and apply failed each action with "disk I/O
    error"."""
    config = write_config(tmp_path / "config")
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "state.db")
    args = {"status": ["status"], "plan": ["plan", str(config)], "agent": ["agent"],
            "apply": ["apply", str(config), "--auto-approve"]}[command]
    done = cli(*args, "--state", str(state), timeout=30)
    assert done.returncode == 1, clean(done)
    assert "state.db is not a regular file; remove it" in clean(done)


@pytest.mark.parametrize("opened", ["directory", "store"])
def test_the_agent_refuses_a_state_others_may_write(tmp_path: Path, opened: str) -> None:
    """The store names the code the agent runs: a state directory or store that other
    users may write (a shared volume, /tmp) would let them run code as the agent."""
    config = write_config(tmp_path / "config")
    state = tmp_path / "state"
    done = cli("apply", str(config), "--state", str(state), "--auto-approve")
    assert done.returncode == 0, clean(done)
    writable = state if opened == "directory" else state / "state.db"
    writable.chmod(0o777 if opened == "directory" else 0o666)
    for args in (("agent", "--state", str(state)),
                 ("daemon", "--repo", str(config), "--state", str(state),
                  "--listen", "127.0.0.1:0")):  # it starts the agent: refused at once
        refused = cli(*args, timeout=30)
        assert refused.returncode == 1, clean(refused)
        assert f"the agent will not run from {writable}: it is writable by other users" \
            in clean(refused)
        assert "Traceback" not in refused.stderr
    assert not (state / "logs").exists(), "no worker started"
