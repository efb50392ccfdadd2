"""`reconciler init [DIR]`: scaffold a new config repository.

The files come from the templates shipped in the package (reconciler/templates/init/;
a leading `dot-` in a name becomes `.`, so the templates need no hidden files), with
the model's digest, a commit id for the version, the time and reconciler's version
filled in; `.schemas/` gets the JSON Schemas that every YAML file's modeline names.
The result validates, and `apply` + `invoke` work on it at once.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from reconciler import __version__
from reconciler.cli.options import describe_os_error
from reconciler.errors import ReconcilerError

TEMPLATE = ("templates", "init")
MODEL = "data/acme/hello/model-1.0.0.json"
CODE = "src/hello.py"
ALLOWED = {".git"}  # what DIR may already hold: a fresh `git init` is fine


def template_files() -> dict[str, bytes]:
    """Relative path in the new repository -> template bytes."""
    root = importlib.resources.files("reconciler").joinpath(*TEMPLATE)
    files: dict[str, bytes] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name == "__pycache__":
                continue
            name = "." + child.name[4:] if child.name.startswith("dot-") else child.name
            if child.is_dir():
                walk(child, f"{prefix}{name}/")
            else:
                files[prefix + name] = child.read_bytes()

    walk(root, "")
    return files


def git_blob_id(data: bytes) -> str:
    """The id Git gives a file with these bytes: a stable 40-hex commit for the version."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def render(files: dict[str, bytes]) -> dict[str, bytes]:
    values = {
        "DIGEST": "sha256:" + hashlib.sha256(files[MODEL]).hexdigest(),
        "COMMIT": git_blob_id(files[CODE]),
        "NOW": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "VERSION": __version__,
    }
    out = {}
    for path, data in files.items():
        if path.endswith((".yaml", ".yml", ".md")):
            text = data.decode()
            for key, value in values.items():
                text = text.replace("{{" + key + "}}", value)
            data = text.encode()
        out[path] = data
    return out


def check_empty(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise ReconcilerError(f"{target} exists and is not a directory")
    try:
        present = sorted(p.name for p in target.iterdir()) if target.exists() else []
    except OSError as exc:
        raise ReconcilerError(f"cannot read {target}: {describe_os_error(exc)}") from None
    extra = [name for name in present if name not in ALLOWED]
    if extra:
        shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
        raise ReconcilerError(f"{target} is not empty ({shown}): init writes only into an "
                              "empty directory, so nothing of yours is overwritten")


EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler init my-platform && cd my-platform && reconciler validate")


@click.command("init", epilog=EXAMPLES)
@click.argument("directory", required=False, default=".",
                type=click.Path(file_okay=False, path_type=Path))
def command(directory: Path) -> None:
    """Scaffold a new config repository in DIRECTORY (default: .), which must be empty.

    \b
    It holds an organization (acme) and its member (alice), an algorithm
    (acme/hello) with its model under data/ (the digest matches) and its code
    under src/, a reservation, Settings, the pull-request workflow (reconciler's
    GitHub Action), a pre-commit hook, and .schemas/ with the JSON Schemas
    that every YAML file's first line points editors at. It validates as it is,
    and `reconciler apply` + `reconciler invoke` work on it at once.
    """
    from reconciler.cli.schema import write_schemas

    check_empty(directory)
    files = render(template_files())
    try:
        for rel, data in files.items():
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    except OSError as exc:
        raise ReconcilerError(f"cannot write into {directory}: {describe_os_error(exc)}"
                              ) from None
    write_schemas(directory / ".schemas")
    click.echo(f"Created a config repository in {directory}:")
    for rel in sorted(files):
        click.echo(f"  {rel}")
    click.echo("  .schemas/ (the JSON Schemas for editors)")
    where = "" if directory == Path(".") else f"cd {directory}\n  "
    click.echo("\nNext:\n"
               f"  {where}reconciler validate\n"
               "  reconciler apply --auto-approve      # the local runtime (state: ./.reconciler)\n"
               "  reconciler daemon --repo .           # or keep it applied, replicas warm\n"
               "  reconciler invoke --as alice acme/hello '{\"name\": \"world\"}'\n"
               "Replace YOUR-ORG in .github/workflows/plan.yml and .pre-commit-config.yaml.")
