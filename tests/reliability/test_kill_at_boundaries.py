"""kill -9 at each action boundary, then a re-run converges (a family that already holds).

An apply process is killed with SIGKILL right after its k-th action, for
every k. Running `apply` again converges: the live state is exactly the
desired one (nothing twice, nothing left over), the interruption is
reported, and an agent then runs exactly the reserved workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from configkit import write_config
from localkit import kill_all, wait_for, workers_of
from relkit import clean, cli, env

from reconciler.config.loader import load_config
from reconciler.pipeline import plan_config
from reconciler.runtimes.local.agent import Agent
from reconciler.runtimes.local.runtime import LocalRuntime

pytestmark = pytest.mark.slow

DRIVER = """
import json, os, signal, sys
from pathlib import Path
from reconciler.apply import execute
from reconciler.plan.plans import Plan
from reconciler.runtimes.local.runtime import LocalRuntime

plan_file, state, config, kill_after = sys.argv[1:]
plan = Plan.from_json(json.loads(Path(plan_file).read_text()))
runtime = LocalRuntime(Path(state), config_dir=Path(config))
done = []
def progress(entry):
    done.append(entry)
    if len(done) == int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)
execute(plan, runtime, journal_dir=Path(state), progress=progress, wait_timeout=1)
"""


def planned(config: Path, state: Path) -> tuple[int, Path]:
    runtime = LocalRuntime(state)
    try:
        plan = plan_config(config, runtime, config=load_config(config)).plan
    finally:
        runtime.close()
    path = state.parent / f"{state.name}.plan.json"
    path.write_text(json.dumps(plan.to_json()))
    return len(plan.actions), path


def live_matches(config: Path, state: Path) -> bool:
    runtime = LocalRuntime(state)
    try:
        return plan_config(config, runtime, config=load_config(config)).plan.empty
    finally:
        runtime.close()


def test_kill_9_after_each_action_then_apply_converges(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", replicas=2, limits=2)
    total, _ = planned(config, tmp_path / "probe")
    assert total == 4  # tenant alice, two quotas, alice's pool
    for k in range(1, total):
        state = tmp_path / f"state-{k}"
        _, plan_file = planned(config, state)
        killed = subprocess.run([sys.executable, "-c", DRIVER, str(plan_file), str(state),
                                 str(config), str(k)], env=env(), timeout=60)
        assert killed.returncode == -9
        rerun = cli("apply", str(config), "--state", str(state), "--auto-approve")
        assert rerun.returncode == 0, clean(rerun)
        assert f"stopped after {k} of {total} actions" in rerun.stderr
        assert live_matches(config, state)
    agent = Agent(state, poll_interval=0.1, grace=2.0)
    agent.start()
    runtime = LocalRuntime(state)
    try:
        runtime.wait_ready("alice.acme.adder.aaaaaaaaaaaa", 2, timeout=20)
        wait_for(lambda: len(workers_of(state)) == 2, message="exactly the 2 reserved workers")
    finally:
        runtime.close()
        agent.stop()
        kill_all(workers_of(state))
