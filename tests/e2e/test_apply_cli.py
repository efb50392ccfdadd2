"""`reconciler apply` end to end: real CLI processes, a real config, real workers."""

from __future__ import annotations

import fcntl
import json
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from configkit import ENV, add_public_version, reconciler, write_config  # noqa: E402
from conftest_local import Local, local_fixture  # noqa: E402,F401
from localkit import wait_for, workers_of  # noqa: E402

from reconciler.runtimes.local.lock import StateLock  # noqa: E402

pytestmark = pytest.mark.slow


def state_args(local: Local) -> list[str]:
    """--state, and --auto-approve: without a terminal apply asks for it (a saved plan
    file never needs it)."""
    return ["--state", str(local.site.state), "--auto-approve"]


def pools(local: Local) -> dict[str, int]:
    live = local.runtime.observe()
    return {p.id: p.replicas for p in live.pools}


def test_apply_creates_then_reports_no_changes(local: Local, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", replicas=2)
    first = reconciler("apply", str(config), *state_args(local))
    assert first.returncode == 0, first.stderr
    assert "+ created    WarmPool alice.acme.adder.aaaaaaaaaaaa" in first.stdout
    assert "Apply complete" in first.stdout and "Traceback" not in first.stderr
    assert pools(local) == {"alice.acme.adder.aaaaaaaaaaaa": 2}
    again = reconciler("apply", str(config), *state_args(local))
    assert again.returncode == 0 and "No changes" in again.stdout


def test_moved_reservation_new_pool_ready_before_old_is_deleted(local: Local,
                                                                tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    local.agent()
    assert reconciler("apply", str(config), *state_args(local)).returncode == 0
    old = "alice.acme.adder.aaaaaaaaaaaa"
    local.runtime.wait_ready(old, 1, timeout=15)
    add_public_version(config)
    moved = reconciler("apply", str(config), *state_args(local), "--wait-timeout", "30s")
    assert moved.returncode == 0, moved.stderr
    new = "alice.acme.adder.bbbbbbbbbbbb"
    out = moved.stdout
    assert out.index(f"created    WarmPool {new}") < out.index(f"deleted    WarmPool {old}")
    assert pools(local) == {new: 1}
    assert local.runtime.observe().ready(new) == 1


def test_move_without_agent_is_deferred_then_completed(local: Local, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    assert reconciler("apply", str(config), *state_args(local)).returncode == 0
    add_public_version(config)
    deferred = reconciler("apply", str(config), *state_args(local))
    assert deferred.returncode == 0, deferred.stderr
    assert "deferred" in deferred.stdout and "no local agent is running" in deferred.stdout
    assert "old pool keeps serving" in deferred.stderr
    assert len(pools(local)) == 2
    local.agent()
    done = reconciler("apply", str(config), *state_args(local))
    assert done.returncode == 0, done.stderr
    assert pools(local) == {"alice.acme.adder.bbbbbbbbbbbb": 1}


ALICE_LIMIT = """apiVersion: reconciler/v1
kind: CapacityLimit
metadata:
  name: alice-capacity
spec:
  account: alice
  maxEngines: 3
"""


def test_move_at_the_quota_is_refused_then_handed_over(local: Local, tmp_path: Path) -> None:
    """As in config-examples: alice has maxEngines 3 and reserves 2 replicas of the latest
    public version; publishing a new one would need 4 engines during make-before-break."""
    config = write_config(tmp_path / "config", replicas=2)
    (config / "limits.yaml").write_text(ALICE_LIMIT)
    local.agent()
    assert reconciler("apply", str(config), *state_args(local)).returncode == 0
    old, new = "alice.acme.adder.aaaaaaaaaaaa", "alice.acme.adder.bbbbbbbbbbbb"
    local.runtime.wait_ready(old, 2, timeout=15)
    add_public_version(config)
    refused = reconciler("apply", str(config), *state_args(local))
    assert refused.returncode == 1
    output = refused.stdout + refused.stderr
    assert ("account alice would run 4 warm replicas during the move, over its maxEngines 3 "
            "(capacity limit alice-capacity); raise maxEngines to 4, or pass "
            "--allow-reduced-capacity") in " ".join(output.split())
    assert "Traceback" not in refused.stderr
    assert pools(local) == {old: 2}
    moved = reconciler("apply", str(config), *state_args(local), "--allow-reduced-capacity",
                       "--wait-timeout", "30s")
    assert moved.returncode == 0, moved.stderr
    assert f"handing over pool {old} to {new}: 2 of 2 replicas" in moved.stdout + moved.stderr
    assert f"deleted    WarmPool {old}" in moved.stdout
    assert pools(local) == {new: 2}
    wait_for(lambda: local.runtime.observe().ready(new) == 2, message="new pool ready")
    again = reconciler("apply", str(config), *state_args(local))
    assert again.returncode == 0 and "No changes" in again.stdout


def test_stale_plan_file_is_refused_and_nothing_changes(local: Local, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    plan_file = tmp_path / "plan.json"
    planned = reconciler("plan", str(config), "--state", str(local.site.state),
                         "--out", str(plan_file))
    assert planned.returncode == 0, planned.stderr
    assert reconciler("apply", str(config), *state_args(local)).returncode == 0
    stale = reconciler("apply", "--plan", str(plan_file), *state_args(local))
    assert stale.returncode == 1 and "error:" in stale.stderr
    assert "Traceback" not in stale.stderr
    assert pools(local) == {"alice.acme.adder.aaaaaaaaaaaa": 1}


def test_saved_plan_applies_exactly(local: Local, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    plan_file = tmp_path / "plan.json"
    assert reconciler("plan", str(config), "--state", str(local.site.state), "--out",
                      str(plan_file)).returncode == 0
    applied = reconciler("apply", "--plan", str(plan_file), *state_args(local))
    assert applied.returncode == 0, applied.stderr
    assert pools(local) == {"alice.acme.adder.aaaaaaaaaaaa": 1}
    roots = local.runtime.report()["roots"]
    assert roots["data_root"] == str((config / "data").resolve())


def test_a_second_applier_fails_with_the_holder_named(local: Local, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    with StateLock(local.site.state / "apply.lock", "reconciler daemon"):
        held = reconciler("apply", str(config), *state_args(local))
    assert held.returncode == 1
    assert "is locked by `reconciler daemon`" in held.stderr and "Traceback" not in held.stderr
    assert pools(local) == {}


def test_kill_9_between_actions_then_rerun_converges(local: Local, tmp_path: Path) -> None:
    """The apply is stopped between two actions: its stdout is a 4 KiB pipe the test stops
    reading after the plan, so the progress line after some action blocks; then kill -9."""
    config = write_config(tmp_path / "config", limits=200)
    local.agent()
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "apply", str(config),
                             *state_args(local)], stdout=subprocess.PIPE, env=ENV,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    fcntl.fcntl(proc.stdout.fileno(), F_SETPIPE_SZ, 4096)
    for line in iter(proc.stdout.readline, b""):
        if line.startswith(b"Plan:"):
            break
    wait_for(lambda: pipe_bytes(proc.stdout) >= 4000, message="apply blocked mid-way")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    applied = len(local.runtime.observe().quotas)
    assert 0 < applied < 200, applied
    rerun = reconciler("apply", str(config), *state_args(local))
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming: the last apply of plan" in rerun.stderr
    pool = "alice.acme.adder.aaaaaaaaaaaa"
    local.runtime.wait_ready(pool, 1, timeout=15)
    live = local.runtime.observe()
    assert [p.id for p in live.pools] == [pool] and len(live.quotas) == 200
    wait_for(lambda: len(workers_of(local.site.state)) == 1, message="exactly one worker")
    final = reconciler("apply", str(config), *state_args(local))
    assert "No changes" in final.stdout
    journal = (local.site.state / "journal.jsonl").read_text().splitlines()
    assert json.loads(journal[-1])["event"] == "end"


F_SETPIPE_SZ = 1031  # Linux fcntl: set a pipe's capacity


def pipe_bytes(pipe: Any) -> int:
    """Bytes waiting unread in a pipe (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(pipe.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def cached_files(cache: Path) -> list[Path]:
    return list(cache.rglob("*.pickle"))


def test_a_saved_plan_uses_the_parse_cache_for_its_settings(local: Local,
                                                            tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    plan_file = tmp_path / "plan.json"
    assert reconciler("plan", str(config), "--state", str(local.site.state), "--no-cache",
                      "--out", str(plan_file)).returncode == 0
    cache = tmp_path / "cache"
    applied = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--plan", str(plan_file),
         *state_args(local)], capture_output=True, text=True, timeout=60,
        env={**ENV, "RECONCILER_CACHE_DIR": str(cache)})
    assert applied.returncode == 0, applied.stderr
    assert cached_files(cache), "the config behind the plan was loaded through the cache"


def test_a_saved_plan_runs_on_the_runtime_it_was_made_for(local: Local, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    plan_file = tmp_path / "plan.json"
    assert reconciler("plan", str(config), "--state", str(local.site.state), "--out",
                      str(plan_file)).returncode == 0
    other = reconciler("apply", "--plan", str(plan_file), *state_args(local),
                       "--runtime", "kubernetes")
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert (f"plan file {plan_file} was made for the local runtime, not kubernetes: leave "
            "out --runtime") in other.stderr
    assert pools(local) == {}

    same = reconciler("apply", "--plan", str(plan_file), *state_args(local), "--runtime", "local")
    assert same.returncode == 0, same.stderr
    assert pools(local) == {"alice.acme.adder.aaaaaaaaaaaa": 1}


def test_a_state_directory_that_cannot_be_made_is_a_user_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    (tmp_path / "file").write_text("not a directory\n")
    done = reconciler("apply", str(config), "--state", str(tmp_path / "file" / "state"),
                      "--auto-approve")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (f"error: --state {tmp_path / 'file' / 'state'}: cannot create the state "
            "directory: Not a directory") in done.stderr
