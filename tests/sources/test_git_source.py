"""GitSource against real repositories: clone, fetch, force-push, subdirectories, failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from gitops_harness import GitRepo, git  # noqa: E402

from reconciler.errors import SourceError  # noqa: E402
from reconciler.sources.base import Snapshot  # noqa: E402
from reconciler.sources.credentials import git_environment, redact, register_secret  # noqa: E402
from reconciler.sources.git import GitSource  # noqa: E402


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "origin")
    repo.write("config/a.yaml", "a: 1\n")
    repo.write("README.md", "readme\n")
    repo.commit("first")
    return repo


def source(repo: GitRepo, tmp_path: Path, **kwargs: str) -> GitSource:
    return GitSource(str(repo.remote), cache_root=tmp_path / "state" / "git", **kwargs)


def pull(src: GitSource) -> Snapshot:
    """What the loop does: fetch the head, then check it out."""
    return src.checkout(src.fetch().revision)


def test_fetch_checks_out_the_branch_head_in_a_private_worktree(repo: GitRepo,
                                                               tmp_path: Path) -> None:
    src = source(repo, tmp_path)
    first = pull(src)
    assert first.commit == git("rev-parse", "HEAD", cwd=repo.work)
    assert (first.config_dir / "config" / "a.yaml").read_text() == "a: 1\n"
    assert tmp_path / "state" / "git" in first.config_dir.parents

    repo.write("config/a.yaml", "a: 2\n")
    second_sha = repo.commit("second")
    head = src.fetch()
    assert head.commit == second_sha
    assert (head.config_dir / "config" / "a.yaml").read_text() == "a: 1\n", "not checked out yet"
    second = pull(src)
    assert second.commit == second_sha
    assert second.config_dir == first.config_dir, "the worktree path is stable"
    assert (second.config_dir / "config" / "a.yaml").read_text() == "a: 2\n"


def test_a_local_work_tree_is_fetched_from_but_never_touched(repo: GitRepo,
                                                            tmp_path: Path) -> None:
    before = git("status", "--porcelain", cwd=repo.work), git("rev-parse", "HEAD", cwd=repo.work)
    src = GitSource(str(repo.work), cache_root=tmp_path / "cache")
    snapshot = pull(src)
    assert snapshot.commit == before[1]
    assert (git("status", "--porcelain", cwd=repo.work),
            git("rev-parse", "HEAD", cwd=repo.work)) == before


def test_force_push_is_followed_and_stray_files_are_cleaned(repo: GitRepo,
                                                           tmp_path: Path) -> None:
    src = source(repo, tmp_path)
    base = git("rev-parse", "HEAD", cwd=repo.work)
    repo.write("config/b.yaml", "b: 1\n")
    repo.commit("to be rewritten")
    assert (pull(src).config_dir / "config" / "b.yaml").exists()
    (src.config_dir / "stray.txt").write_text("left by someone")

    repo.reset_hard(base)
    repo.write("config/c.yaml", "c: 1\n")
    rewritten = repo.commit("rewritten history", force=True)
    snapshot = pull(src)
    assert snapshot.commit == rewritten
    assert not (snapshot.config_dir / "config" / "b.yaml").exists()
    assert (snapshot.config_dir / "config" / "c.yaml").exists()
    assert not (snapshot.config_dir / "stray.txt").exists()


def test_path_selects_a_subdirectory_and_checkout_goes_back(repo: GitRepo,
                                                          tmp_path: Path) -> None:
    src = source(repo, tmp_path, path="config")
    good = pull(src)
    assert good.config_dir.name == "config"
    repo.write("config/a.yaml", "a: broken\n")
    repo.commit("bad")
    assert (pull(src).config_dir / "a.yaml").read_text() == "a: broken\n"
    restored = src.checkout(good.revision)
    assert restored.commit == good.commit
    assert (restored.config_dir / "a.yaml").read_text() == "a: 1\n"


def test_a_missing_branch_says_so(repo: GitRepo, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="branch 'release' not found"):
        source(repo, tmp_path, branch="release").fetch()


def test_an_unreachable_remote_raises_source_error_without_credentials(tmp_path: Path) -> None:
    url = "https://deploy:s3cr3t-pass@127.0.0.1:9/org/config.git"
    src = GitSource(url, cache_root=tmp_path / "cache",
                    env={"RECONCILER_GIT_TOKEN": "tok-abcdef-123", "PATH": "/usr/bin:/bin"})
    with pytest.raises(SourceError) as caught:
        src.fetch()
    message = str(caught.value)
    assert "cannot fetch branch 'main'" in message
    assert "s3cr3t-pass" not in message and "tok-abcdef-123" not in message
    assert "s3cr3t" not in src.location


def test_missing_directory_remote_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot fetch"):
        GitSource(str(tmp_path / "nowhere"), cache_root=tmp_path / "cache").fetch()


def test_credentials_go_to_the_environment_only() -> None:
    env = git_environment({"RECONCILER_GIT_TOKEN": "ghp_token123",
                           "RECONCILER_GIT_SSH_KEY": "/keys/deploy key"},
                          "https://github.com/org/repo.git")
    assert env["GIT_SSH_COMMAND"] == "ssh -i '/keys/deploy key' -o IdentitiesOnly=yes " \
                                     "-o BatchMode=yes"
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ")
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert redact(f"header {env['GIT_CONFIG_VALUE_0']} and ghp_token123") == \
        "header Authorization: Basic *** and ***"
    ssh_only = git_environment({"RECONCILER_GIT_TOKEN": "t0ken"}, "git@github.com:org/r.git")
    assert "GIT_CONFIG_COUNT" not in ssh_only


def test_redact_masks_url_userinfo_and_registered_secrets() -> None:
    register_secret("hook-secret-value")
    text = redact("fetch https://user:pw@host/x failed; secret hook-secret-value")
    assert text == "fetch https://***@host/x failed; secret ***"


def test_settle_refreshes_the_index_once_after_a_checkout(repo: GitRepo, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Files checked out in the same second as the index are racily clean: the next
    checkout hashes them all (0.25 s at 100,000 reservations, on the pass a webhook waits
    for). settle() refreshes the index between passes, once per checkout."""
    trace = tmp_path / "git-trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))

    def refreshes() -> int:
        return trace.read_text().count("update-index -q --refresh") if trace.exists() else 0

    src = source(repo, tmp_path)
    src.settle()  # nothing checked out yet: nothing to do
    assert refreshes() == 0
    snapshot = pull(src)
    src.settle()
    assert refreshes() == 1
    src.settle()  # no checkout since
    assert refreshes() == 1
    assert git("status", "--porcelain", cwd=snapshot.config_dir) == ""
    repo.write("config/a.yaml", "a: 3\n")
    repo.commit("third")
    pull(src)
    src.settle()
    assert refreshes() == 2
