"""`reconciler schema --out DIR`: the JSON Schemas, for editors and other tools.

The files are the ones the loader validates with (shipped in the package from the
repository's schemas/), each given an `$id`. Their `$ref`s are relative
(`common.json#/$defs/name`), so they resolve against the folder they are written to:
by default every `$id` is the file's own name, which a tool resolves against where it
read the file from (an editor's local file, a checkout, a web server). `--base-uri`
gives absolute `$id`s instead, for a folder published at that address.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import click

from reconciler.cli.options import describe_os_error
from reconciler.errors import ReconcilerError

MODELINE = "# yaml-language-server: $schema={path}"


def write_schemas(out: Path, base_uri: str | None = None) -> list[Path]:
    """Write every schema into `out` (made if missing); the paths written."""
    from reconciler.config.schema import load_schemas

    prefix = "" if base_uri is None else _base(base_uri)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, schema in load_schemas().items():
            document = {"$schema": schema.get("$schema"), "$id": prefix + name,
                        **{k: v for k, v in schema.items() if k not in ("$schema", "$id")}}
            path = out / name
            if path.is_symlink() or (path.exists() and not path.is_file()):
                # .schemas/ is committed to config repositories: a link there points anywhere
                raise ReconcilerError(f"--out {out}: {path} is a symbolic link or not a "
                                      "regular file; schema never writes through one "
                                      "(remove it)")
            path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                            encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise ReconcilerError(f"--out {out}: cannot write the schemas: "
                              f"{describe_os_error(exc)}") from None
    return written


def _base(uri: str) -> str:
    parts = urlsplit(uri)
    if not parts.scheme or parts.query or parts.fragment:
        raise click.BadParameter(f"expected an absolute URI such as "
                                 f"https://example.com/schemas/v1/, got {uri!r}",
                                 param_hint="--base-uri")
    return uri if uri.endswith("/") else uri + "/"


EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler schema --out .schemas\n"
            "  reconciler schema --out public/ --base-uri https://example.com/schemas/v1/")


@click.command("schema", epilog=EXAMPLES)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the schemas to (made if missing; our files in it are "
                   "replaced, others are left alone).")
@click.option("--base-uri", default=None, metavar="URI",
              help="Give each schema the $id URI+FILE (for a folder published there) "
                   "[default: $id is the file name, resolved against wherever it is read].")
def command(out: Path, base_uri: str | None) -> None:
    """Write the JSON Schemas of the config format into --out, for editors and tools.

    \b
    One file per kind (account.json, algorithm.json, reservation.json,
    capacitylimit.json, settings.json), envelope.json for files that mix
    kinds, and common.json, which they $ref. Point the YAML language server at
    them with a first line such as
      # yaml-language-server: $schema=../.schemas/reservation.json
    (the path relative to the YAML file). `reconciler init` does this for you.
    """
    written = write_schemas(out, base_uri)
    click.echo(f"wrote {len(written)} schemas to {out}: "
               f"{', '.join(path.name for path in written)}")
    click.echo("editors: start a YAML file with " +
               MODELINE.format(path=f"{out.as_posix().rstrip('/')}/reservation.json") +
               " (the path relative to that file)")
