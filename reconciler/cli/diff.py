"""`reconciler diff BASE_REF HEAD_REF`: the plan between two commits of the config repo.

This is what a pull-request workflow posts as a comment: no runtime is
involved, the base commit's desired state plays the live state. Each ref's
tree is exported with `git archive` into a temp directory, so the user's
checkout (its index, work tree and worktree list) is never touched.
An invalid HEAD fails the command with its diagnostics; an invalid BASE (an
older commit that was broken) is planned against as if empty, with a warning.
"""

from __future__ import annotations

import os
import sys
import tarfile
import tempfile
from pathlib import Path

import click

from reconciler.cli import options
from reconciler.config.model import Config
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.gcpause import while_running
from reconciler.sources.base import inside_path, refuse_untrusted_repository
from reconciler.states import DesiredState, LiveState

FORMATS = ("text", "markdown", "json")


def _resolve(repo: object, ref: str) -> str:
    import git

    assert isinstance(repo, git.Repo)
    try:
        return str(repo.commit(ref).hexsha)
    except (git.BadName, git.BadObject, ValueError, git.GitCommandError):
        raise ReconcilerError(f"unknown Git ref {ref!r} in {repo.working_dir}") from None


def _export(repo: object, sha: str, into: Path) -> list[str]:
    """The commit's tree as plain files under `into` (no .git, nothing checked out).

    Symbolic links that point outside the tree (absolute, or up past its root)
    are skipped, never followed: the config is read from the commit alone. Returns
    them as `path -> target`, for a warning."""
    import git

    assert isinstance(repo, git.Repo)
    archive = into.parent / f"{into.name}.tar"
    skipped: list[str] = []

    def keep_inside(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError:
            if member.issym() or member.islnk():
                skipped.append(f"{member.name} -> {member.linkname}")
                return None
            raise

    try:
        with archive.open("wb") as stream:
            repo.git.archive("--format=tar", sha, output_stream=stream)
        into.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter=keep_inside)
        archive.unlink()
    except git.GitCommandError as exc:
        raise ReconcilerError(f"cannot export {sha[:12]}: {exc.stderr or exc}") from None
    except tarfile.TarError as exc:  # FilterError and friends: a tree we will not unpack
        raise ReconcilerError(f"cannot export {sha[:12]}: {exc}") from None
    except OSError as exc:
        raise ReconcilerError(f"cannot export {sha[:12]} into {into}: "
                              f"{options.describe_os_error(exc)}") from None
    return skipped


def _load(root: Path, subdir: str, sha: str, cache_dir: Path | None) -> Config:
    from reconciler.config import load_config

    config_dir = root / subdir if subdir else root
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(config_dir)]) != real_root:
        raise ReconcilerError(f"--path {subdir}: leaves the repository at {sha[:12]}")
    if not config_dir.is_dir():
        from reconciler.errors import Diagnostic

        raise ConfigError([Diagnostic(f"--path {subdir}: no such directory at {sha[:12]}")])
    return load_config(config_dir, commit=sha, cache_dir=cache_dir)


def _compile(config: Config) -> DesiredState:
    from reconciler.desired import compile_config

    return compile_config(config)


EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler diff origin/main HEAD --format markdown > plan.md\n"
            "  reconciler diff HEAD~1 HEAD --path platform --detailed-exitcode")


@click.command("diff", epilog=EXAMPLES)
@click.argument("base_ref")
@click.argument("head_ref")
@click.option("--repo", "repo_path", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="The config repository (Git).")
@click.option("--path", "subdir", default="", metavar="SUBDIR",
              help="Config directory inside the repository.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="markdown is the pull-request comment.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@click.option("--allow-mass-delete", is_flag=True,
              help="Do not report a change over the deletion limits as an error.")
@options.no_cache_option
@while_running
def command(base_ref: str, head_ref: str, repo_path: Path, subdir: str, fmt: str,
            detailed_exitcode: bool, allow_mass_delete: bool, no_cache: bool) -> None:
    """Plan the change from BASE_REF to HEAD_REF of a config repository.

    Both commits are validated and compiled; the plan turns BASE's warm pools
    into HEAD's, exactly as `plan` would on a runtime that runs BASE (capacity
    placement on nodes is not checked: no runtime is involved). A pull-request
    workflow runs `reconciler diff origin/main HEAD --format markdown`.
    Symbolic links in the config that point outside the repository are
    skipped, with a warning.

    Exit codes: 0 (no changes, or changes without --detailed-exitcode); 2 changes
    with --detailed-exitcode; 1 HEAD is invalid or the change is refused.
    """
    import git

    from reconciler.cli.plan import exit_code, print_plan
    from reconciler.plan import make_plan

    try:
        repo = git.Repo(repo_path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ReconcilerError(f"--repo {repo_path}: not a Git repository") from None
    refuse_untrusted_repository(Path(repo.working_tree_dir or repo.git_dir), "--repo")
    subdir = inside_path(subdir, "--path")
    prefix = f"{subdir}/" if subdir else ""  # only links in the config directory matter
    with repo, tempfile.TemporaryDirectory(prefix="reconciler-diff-") as tmp:
        base_sha, head_sha = _resolve(repo, base_ref), _resolve(repo, head_ref)
        skipped = _export(repo, base_sha, Path(tmp) / "base")
        skipped += _export(repo, head_sha, Path(tmp) / "head")
        for link in sorted({link for link in skipped if link.startswith(prefix)}):
            click.echo(f"warning: skipped the symbolic link {link}: it points outside the "
                       f"repository", err=True)
        cache_dir = options.cache_dir_for(no_cache)
        head = _load(Path(tmp) / "head", subdir, head_sha, cache_dir)
        try:
            base = _compile(_load(Path(tmp) / "base", subdir, base_sha, cache_dir))
        except ConfigError as exc:
            click.echo(f"warning: base {base_ref} ({base_sha[:12]}) is invalid "
                       f"({len(exc.diagnostics)} errors); planning against an empty base",
                       err=True)
            base = DesiredState()
        live = LiveState(tenants=base.tenants, quotas=base.quotas, pools=base.pools,
                         revision=f"base:{base_sha}")
        plan = make_plan(_compile(head), live, None, runtime="diff",
                         safety=head.settings.safety, source_path=subdir or ".",
                         source_commit=head_sha, allow_mass_delete=allow_mass_delete)
    print_plan(plan, fmt)
    code = exit_code(plan, detailed_exitcode)
    if code:
        sys.exit(code)  # not click's Exit: `python -m reconciler` ignores main()'s result
