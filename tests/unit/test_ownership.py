"""What the agent and the parse cache trust: this user's files, writable by nobody else."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest

from reconciler.ownership import untrusted


def test_a_directory_of_this_user_with_umask_022_or_077_is_trusted(tmp_path: Path) -> None:
    for mode in (0o755, 0o700):
        tmp_path.chmod(mode)
        assert untrusted(tmp_path, directory=True) is None
    assert untrusted(tmp_path / "absent", directory=True) is None


def test_writable_by_all_or_by_a_shared_group_is_not(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    assert untrusted(tmp_path, directory=True) == "is writable by other users"
    shared = next((g for g in grp.getgrall()
                   if g.gr_name != pwd.getpwuid(os.geteuid()).pw_name), None)
    if shared is None or os.geteuid() != 0:
        pytest.skip("giving a directory another group needs root and a group to give")
    os.chown(tmp_path, -1, shared.gr_gid)
    tmp_path.chmod(0o775)
    assert untrusted(tmp_path, directory=True) == "is writable by other users (its group)"


def test_group_writable_by_the_users_own_private_group_is_trusted(tmp_path: Path) -> None:
    """umask 002 systems (user private groups) make every file group-writable: `make run`
    must still work there."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    try:
        own = grp.getgrnam(user)
    except KeyError:
        pytest.skip(f"no group named {user}")
    if set(own.gr_mem) - {user}:
        pytest.skip(f"the group {user} has other members")
    if os.stat(tmp_path).st_gid != own.gr_gid:
        os.chown(tmp_path, -1, own.gr_gid)
    tmp_path.chmod(0o775)
    assert untrusted(tmp_path, directory=True) is None
    store = tmp_path / "state.db"
    store.write_bytes(b"")
    store.chmod(0o664)
    assert untrusted(store, directory=False) is None
    assert untrusted(tmp_path, directory=False) == "is not a regular file"
