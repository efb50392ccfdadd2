"""The envtest binaries are found from a worktree too, not only from the main checkout."""

from __future__ import annotations

from pathlib import Path

import pytest
from envtest import BINARIES, find_assets


def fake_assets(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in BINARIES:
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    return folder


@pytest.mark.parametrize("repo", ["main", "wt/review"])
def test_shared_envtest_is_found_above_the_repo(
        tmp_path: Path, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    assets = fake_assets(tmp_path / "shared" / "envtest")
    test_file = tmp_path / repo / "tests" / "kubernetes" / "conftest.py"
    test_file.parent.mkdir(parents=True)
    assert find_assets(test_file) == assets


def test_kubebuilder_assets_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_assets(tmp_path / "shared" / "envtest")
    chosen = fake_assets(tmp_path / "elsewhere")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(chosen))
    test_file = tmp_path / "main" / "tests" / "kubernetes" / "conftest.py"
    test_file.parent.mkdir(parents=True)
    assert find_assets(test_file) == chosen
