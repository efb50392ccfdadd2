"""The CLI imports only what a command needs (PERFORMANCE.md: import lazily).

`validate` runs in CI on every pull request and must start fast: no rich,
deepdiff, Git, watchfiles or Kubernetes client. Only --runtime kubernetes may
load the Kubernetes client.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("rich", "deepdiff", "kubernetes", "git", "watchfiles", "jsonschema")
PROBE = (
    "import atexit, sys\n"
    f"atexit.register(lambda: print('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules),"
    " file=sys.stderr))\n"
    "from reconciler.cli import main\n"
    "main(sys.argv[1:])\n"
)


def loaded(*args: str, cwd: Path) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env={"RECONCILER_NO_CACHE": "1", "PATH": ""})
    assert "Traceback" not in done.stderr, done.stderr
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("LOADED="))
    return {name for name in line.removeprefix("LOADED=").split(",") if name}


def test_validate_loads_no_heavy_library() -> None:
    # jsonschema is imported only for documents the fast pre-check doubts.
    assert loaded("validate", "config-examples", cwd=REPO_ROOT) == set()


@pytest.mark.parametrize("command", ["plan", "status"])
def test_local_runtime_commands_never_load_the_kubernetes_client(
    command: str, tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()  # status refuses a state directory that does not exist
    args = [command, "--state", str(tmp_path / "state")]
    if command == "plan":
        args.insert(1, str(REPO_ROOT / "config-examples"))
    assert "kubernetes" not in loaded(*args, cwd=REPO_ROOT)
