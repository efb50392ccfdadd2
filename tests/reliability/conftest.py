"""Fixtures of tests/reliability: a copy of config-examples, a world-readable temp dir.

Every module here is one family of the trust and failure-containment
behaviour (README.md in this directory has the table). Helpers live in
relkit.py; the runtime helpers of tests/runtime (configkit, localkit) are
on the path too.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for helpers in (HERE, HERE.parent / "runtime"):
    if str(helpers) not in sys.path:
        sys.path.insert(0, str(helpers))

from relkit import EXAMPLES  # noqa: E402


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A private copy of config-examples (accounts, algorithms, src/, data/)."""
    return Path(shutil.copytree(EXAMPLES, tmp_path / "config"))


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temp dir every user can enter (pytest's tmp_path is root-only when run as root):
    for runs as an unprivileged user (relkit.unprivileged)."""
    path = Path(tempfile.mkdtemp(prefix="reconciler-rel-"))
    os.chmod(path, 0o755)
    yield path
    for directory, dirnames, _ in os.walk(path):
        for name in dirnames:
            os.chmod(Path(directory, name), 0o755)  # a test may have locked one away
    shutil.rmtree(path, ignore_errors=True)
