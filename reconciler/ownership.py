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
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "is writable by other users"
    return None
