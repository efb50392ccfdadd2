"""`reconciler validate`: check a config repository and report every problem.

Kept light on purpose (no rich, no kubernetes): it runs in CI on every pull
request and as the first step of `make run`, and a repeat run on an
unchanged repo should finish well under a second.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from reconciler.cli.options import cache_dir_for, code_root_option, config_dir_argument
from reconciler.config import check_config
from reconciler.config.model import Config
from reconciler.errors import Diagnostic, Severity
from reconciler.gcpause import while_running

EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler validate config-examples\n"
            "  reconciler validate platform --format github   # annotations in an Action")


@click.command("validate", epilog=EXAMPLES)
@config_dir_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True, help="text for people, json for tools, github for Actions.")
@click.option("--no-cache", is_flag=True,
              help="Parse and validate every file again (ignore the content-hash cache).")
@code_root_option
@while_running
def command(config_dir: Path, fmt: str, no_cache: bool, code_root: Path | None) -> None:
    """Check CONFIG_DIR (default: .) against the schemas and the cross-document rules.

    Every problem is reported in one run, each with file:line:col, the field
    path and what was expected. Entrypoints must name algorithm code: never a
    standard-library or installed module, and, where the code root exists
    (--code-root, default CONFIG_DIR/src), a module file under it.
    Exit 0 when valid (warnings allowed), 1 when not.
    """
    cache_dir = cache_dir_for(no_cache)
    config, diags = check_config(config_dir, cache_dir=cache_dir, code_root=code_root)
    errors = [d for d in diags if d.severity is Severity.ERROR]
    warnings = [d for d in diags if d.severity is Severity.WARNING]
    out = sys.stdout
    if fmt == "json":
        out.write(json.dumps({
            "valid": config is not None,
            "documents": count_documents(config),
            "errors": [d.to_json() for d in errors],
            "warnings": [d.to_json() for d in warnings],
        }, indent=2) + "\n")
    elif fmt == "github":
        base = workspace()
        out.write("".join(github_line(d, config_dir, base) + "\n" for d in diags))
    else:
        out.write("".join(f"{d}\n" if d.severity is Severity.ERROR else f"warning: {d}\n"
                          for d in diags))
        out.write(summary(config, errors) + "\n")
    out.flush()
    if config is None:
        sys.exit(1)


def count_documents(config: Config | None) -> int:
    if config is None:
        return 0
    return (len(config.accounts) + len(config.algorithms) + len(config.reservations)
            + len(config.limits) + (config.settings.doc is not None))


def summary(config: Config | None, errors: list[Diagnostic]) -> str:
    if config is not None:
        return f"✓ {count_documents(config)} documents valid"
    files = len({d.file for d in errors if d.file}) or 1
    return (f"✗ {len(errors)} error{'s' if len(errors) != 1 else ''} "
            f"in {files} file{'s' if files != 1 else ''}")


def _escape(value: str, prop: bool = False) -> str:
    """GitHub workflow-command escaping (properties also escape ':' and ',')."""
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return value.replace(":", "%3A").replace(",", "%2C") if prop else value


def workspace() -> str:
    """Where GitHub resolves annotation paths: $GITHUB_WORKSPACE (the checkout),
    else the current directory (an Actions job runs at the repository root)."""
    return os.path.realpath(os.environ.get("GITHUB_WORKSPACE") or os.getcwd())


def repo_path(file: str, config_dir: Path, base: str) -> str:
    """A diagnostic's file (relative to CONFIG_DIR) relative to `base`, with '/'."""
    path = os.path.join(os.path.realpath(config_dir), file)
    return Path(os.path.relpath(path, base)).as_posix()


def github_line(d: Diagnostic, config_dir: Path = Path("."), base: str | None = None) -> str:
    """One workflow command; `file=` is relative to the workspace, not CONFIG_DIR,
    so `validate platform --format github` annotates platform/x.yaml."""
    level = "error" if d.severity is Severity.ERROR else "warning"
    props = []
    if d.file:
        file = repo_path(d.file, config_dir, base if base is not None else workspace())
        props.append(f"file={_escape(file, True)}")
    if d.line:
        props += [f"line={d.line}", f"col={d.col}"]
    message = f"{d.path}: {d.message}" if d.path else d.message
    return f"::{level} {','.join(props)}::{_escape(message)}".replace(f"::{level} ::",
                                                                        f"::{level}::")
