"""Shared fixtures: write real config repositories into tmp dirs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

WriteRepo = Callable[..., Path]


@pytest.fixture
def write_repo(tmp_path: Path) -> WriteRepo:
    """write_repo({"accounts.yaml": "...", "data/x.bin": b"..."}, name="repo") -> root.

    Text is written as UTF-8, bytes as they are; parent directories are made."""

    def write(files: Mapping[str, str | bytes], name: str = "repo") -> Path:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        return root

    return write
