"""Nothing is skipped silently (issue 10 item 5).

A config subdirectory that could not be read was skipped, and the plan then
deleted its pools. Any read error is now an error (the directory named),
and an error never turns into deletions: not in `plan`, not in a daemon pass.
Run as a user who cannot read what the test locked away (nobody, when the
tests run as root).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from relkit import EXAMPLES, NOBODY, clean, cli, pools_in, readable_by_all, unprivileged

pytestmark = pytest.mark.slow

ERIN = "erin.erin.wordcount."


def setup(root: Path) -> tuple[Path, Path]:
    """A config whose erin reservation sits in reservations/team/, applied as the owner;
    then reservations/team/ is made unreadable for anyone else."""
    config = Path(shutil.copytree(EXAMPLES, root / "config"))
    (config / "reservations" / "team").mkdir()
    (config / "reservations" / "erin.yaml").rename(config / "reservations" / "team" / "erin.yaml")
    state = root / "state"
    assert cli("apply", str(config), "--state", str(state), "--auto-approve").returncode == 0
    assert any(pool.startswith(ERIN) for pool in pools_in(state))
    readable_by_all(root)
    os.chmod(config / "reservations" / "team", 0o700)
    return config, state


def test_an_unreadable_directory_fails_validate_and_plan(open_tmp: Path) -> None:
    as_other = unprivileged()
    config, state = setup(open_tmp)
    validated = cli("validate", str(config), prefix=as_other)
    assert validated.returncode == 1
    assert "reservations/team: cannot read directory: Permission denied" in clean(validated)
    planned = cli("plan", str(config), "--state", str(state), prefix=as_other)
    assert planned.returncode == 1, clean(planned)
    assert "delete" not in planned.stdout and "cannot read directory" in planned.stderr


def test_an_unreadable_directory_never_becomes_deletions_in_a_daemon_pass(
        open_tmp: Path) -> None:
    as_other = unprivileged()
    config, state = setup(open_tmp)
    if as_other:
        for directory, _, files in os.walk(state):
            os.chown(directory, NOBODY, NOBODY)
            for name in files:
                os.chown(Path(directory, name), NOBODY, NOBODY)
    before = pools_in(state)
    done = cli("daemon", "--repo", str(config), "--state", str(state), "--once",
               "--listen", "127.0.0.1:0", prefix=as_other)
    assert done.returncode == 1, clean(done)
    assert "Permission denied" in clean(done) and "reservations/team" in done.stderr
    assert pools_in(state) == before


def test_an_unreadable_code_file_is_an_error(open_tmp: Path) -> None:
    as_other = unprivileged()
    config = Path(shutil.copytree(EXAMPLES, open_tmp / "config"))
    readable_by_all(open_tmp)
    os.chmod(config / "src" / "wordcount.py", 0o600)
    done = cli("validate", str(config), prefix=as_other)
    assert done.returncode == 1
    assert "module 'wordcount': cannot read src/wordcount.py: Permission denied" in clean(done)
