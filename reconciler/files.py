"""Writing a file whole, so a reader never sees half of it and a planted link is never
followed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, text: str, mode: int | None = 0o644) -> None:
    """Write `path` whole, atomically: a fresh temporary file beside it (O_EXCL, so a
    symlink planted there is never followed), synced, then renamed over `path`. `mode`:
    the file's permissions (None: owner-only, as the temporary file is made)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
