"""Two appliers on one state directory (a family that already holds).

Two `apply` processes started together never interleave: without
--lock-timeout the second fails at once naming the holder, with one it
waits and then finds nothing to do; the store ends exactly as desired.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest
from configkit import write_config
from localkit import wait_for
from relkit import env, pools_in

from reconciler.runtimes.local.lock import is_held

pytestmark = pytest.mark.slow

LIMITS = 60  # enough progress lines to fill a 4 KiB pipe
F_SETPIPE_SZ = 1031  # Linux fcntl: set a pipe's capacity


def start(config: Path, state: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "reconciler", "apply", str(config),
                             "--state", str(state), "--auto-approve", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env())


def quotas(state: Path) -> int:
    from reconciler.runtimes.local.runtime import LocalRuntime

    runtime = LocalRuntime(state)
    try:
        return len(runtime.observe().quotas)
    finally:
        runtime.close()


@pytest.mark.parametrize("wait", [False, True], ids=["fail-fast", "wait"])
def test_two_appliers_never_interleave(tmp_path: Path, wait: bool) -> None:
    """The first apply is held mid-way with the lock (its stdout is a 4 KiB pipe nobody
    reads yet, so a progress line blocks), while the second one starts."""
    config = write_config(tmp_path / "config", limits=LIMITS)
    state = tmp_path / "state"
    extra = ("--lock-timeout", "60s") if wait else ()
    first = start(config, state, *extra)
    assert first.stdout is not None
    fcntl.fcntl(first.stdout.fileno(), F_SETPIPE_SZ, 4096)
    wait_for(lambda: is_held(state / "apply.lock"), message="the first apply holds the state")
    second = start(config, state, *extra)
    if not wait:
        second.wait(timeout=60)
    results = [(*reversed(p.communicate(timeout=90)), p.returncode) for p in (first, second)]
    (first_err, first_out, first_code), (err, out, code) = results
    assert "Traceback" not in first_err + err
    assert first_code == 0 and "Apply complete" in first_out
    if wait:
        assert code == 0 and "No changes" in out
    else:
        assert code == 1 and "is locked by `reconciler apply` (pid" in err
    assert quotas(state) == LIMITS and list(pools_in(state)) == ["alice.acme.adder.aaaaaaaaaaaa"]
