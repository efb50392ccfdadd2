"""Whose files these are: a path another user could have planted or changed.

The parse cache holds what validation trusts, and the local store names the
code the agent runs: both must be this user's alone. A path owned by another
user, or one that group or others may write, is not trusted.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def untrusted(path: Path, *, directory: bool) -> str | None:
    """Why `path` must not be trusted (owned by another user, writable by others, not a
    directory or not a regular file as `directory` says); None when it is fine or does
    not exist yet. Links are not followed: a link is refused as not what it should be."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror})"
    if directory and not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if not directory and not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return f"belongs to uid {info.st_uid}, not to this user"
    if info.st_mode & stat.S_IWOTH:
        return "is writable by other users"
    if info.st_mode & stat.S_IWGRP and not _private_group(info.st_gid):
        return "is writable by other users (its group)"
    return None


def _private_group(gid: int) -> bool:
    """Is `gid` this user's own group (a "user private group": named after the user, no
    other member)? Systems with umask 002 give every user one, so files they make are
    group-writable and still theirs alone."""
    try:
        import grp
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(gid)
    except (ImportError, KeyError):
        return False
    return group.gr_name == user and set(group.gr_mem) <= {user}
