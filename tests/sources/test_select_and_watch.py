"""Choosing Git or watch mode for --repo, and watching a directory with watchfiles."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from gitops_harness import GitRepo, wait_for  # noqa: E402

from reconciler.errors import SourceError  # noqa: E402
from reconciler.sources import DirectorySource, GitSource, open_source  # noqa: E402
from reconciler.sources.watch import content_hash  # noqa: E402


def choose(repo: str, tmp_path: Path) -> tuple[object, str]:
    return open_source(repo, branch="main", path="", cache_root=tmp_path / "cache")


def test_urls_are_tracked_with_git(tmp_path: Path) -> None:
    for url in ("https://github.com/org/config.git", "git@github.com:org/config.git",
                "ssh://git@host/config.git", "file:///srv/config.git"):
        src, _ = choose(url, tmp_path)
        assert isinstance(src, GitSource), url


def test_a_clean_work_tree_top_is_tracked_and_others_are_watched(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "r")
    repo.write("config/a.yaml", "a: 1\n")
    repo.commit("first")
    src, why = choose(str(repo.work), tmp_path)
    assert isinstance(src, GitSource) and why == "a clean Git work tree"
    src, why = choose(str(repo.remote), tmp_path)
    assert isinstance(src, GitSource) and why == "a bare Git repository"

    src, why = choose(str(repo.work / "config"), tmp_path)
    assert isinstance(src, DirectorySource) and "not its top level" in why
    (repo.work / "config" / "b.yaml").write_text("b: 1\n")
    src, why = choose(str(repo.work), tmp_path)
    assert isinstance(src, DirectorySource) and "uncommitted changes" in why

    plain = tmp_path / "plain"
    plain.mkdir()
    src, why = choose(str(plain), tmp_path)
    assert isinstance(src, DirectorySource) and "outside any Git" in why
    with pytest.raises(SourceError, match="no such directory"):
        choose(str(tmp_path / "missing"), tmp_path)


def test_content_hash_follows_config_files_but_not_caches(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: 1\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    first = content_hash(tmp_path)
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "m.pyc").write_bytes(b"junk")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.yaml").write_text("x: 1\n")
    assert content_hash(tmp_path) == first
    (tmp_path / "a.yaml").write_text("a: 2\n")
    assert content_hash(tmp_path) != first
    snapshot = DirectorySource(tmp_path).fetch()
    assert snapshot.commit is None and snapshot.revision.startswith("dir:")


def test_file_changes_trigger_once_per_debounced_burst(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: 1\n")
    src = DirectorySource(tmp_path)
    calls: list[str] = []
    seen = threading.Event()

    def on_change(what: str) -> None:
        calls.append(what)
        seen.set()

    src.start_watch(on_change, debounce_ms=300)
    try:
        wait_for(lambda: src._thread is not None and src._thread.is_alive(), 5, "watcher")
        threading.Event().wait(0.3)  # let the watcher arm before the first write
        for n in range(5):
            (tmp_path / "a.yaml").write_text(f"a: {n}\n")
        wait_for(seen.is_set, 10, "a file-change callback")
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "__pycache__").mkdir()
        (tmp_path / "src" / "__pycache__" / "m.pyc").write_bytes(b"x")
        threading.Event().wait(1.0)
    finally:
        src.close()
    assert calls[0] == "a.yaml"
    assert len(calls) <= 3, calls  # a burst of writes is one or two calls, not five
    assert all("pyc" not in c for c in calls)
