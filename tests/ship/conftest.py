"""The wheel, built once per session by the Dockerfile's build-stage command (see shipkit)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from shipkit import build_context, pip_command, run, stages


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reconciler wheel, from a copy of exactly what the build stage COPYs.

    Two deviations from the image build, for speed and to need no network: `--no-deps`
    (the dependencies are installed here already, so no wheels of theirs are needed) and
    `--no-build-isolation` (the build backend, setuptools, comes from the test extra)."""
    tmp = tmp_path_factory.mktemp("build")
    src = build_context(tmp / "src")
    wheels = tmp / "wheels"
    command = pip_command(stages()[0], "wheel").replace(" /src", f" {src}")
    command = command.replace("/wheels", str(wheels)).replace(
        "python -m pip wheel",
        f"{shlex.quote(sys.executable)} -m pip wheel --no-deps --no-build-isolation")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "PIP_NO_INDEX": "1"}
    built = run(command, env=env, cwd=tmp, timeout=180)
    assert built.returncode == 0, built.stdout + built.stderr
    [found] = wheels.glob("reconciler-*.whl")
    return found
