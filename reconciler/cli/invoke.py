"""`reconciler invoke --as CALLER OWNER/NAME[/VERSION] INPUT_JSON`: call an algorithm.

Routes to a warm replica of the CALLER's own pool for that version (warm
instances are never shared across accounts). With none, it starts a cold
worker for this one call, then stops it, and says so. Without VERSION it
calls the latest public version, as Algorithmia's API does. A caller may call
a private or unpublished version only as the owner or a member of the owning
organization. The output JSON goes to stdout; "warm|cold, N ms" to stderr.

The routing (which version and replica, warm or cold, what may be retried)
is the local runtime's (runtimes/local/routing.py); this command parses the
options and prints. When the store has the route, no config is loaded.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import click

from reconciler.cli import options
from reconciler.cli.durations import DURATION
from reconciler.errors import ReconcilerError


def _positive(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value <= 0:
        raise click.BadParameter("must be greater than 0 (a call needs time to run)")
    return value


EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler invoke --as alice acme/sentiment '{\"text\": \"I love this\"}'\n"
            "  reconciler invoke --as bob acme/sentiment/1.2.0 @input.json\n"
            "  echo '\"hello\"' | reconciler invoke --as dave globex/embed -")


@click.command("invoke", epilog=EXAMPLES)
@click.option("--as", "caller", required=True, metavar="CALLER", help="The calling account.")
@click.argument("algorithm", metavar="OWNER/NAME[/VERSION]")
@click.argument("input_json", metavar="INPUT_JSON")
@options.state_option
@click.option("--config", "config_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Config repository to resolve the version in [default: the "
                                 "versions the last apply recorded in the store, else the "
                                 "config dir it recorded].")
@options.recorded_roots
@click.option("--timeout", type=DURATION, default="30s", show_default=True, callback=_positive,
              help="How long the call (and a cold start) may take.")
@options.no_cache_option
def command(caller: str, algorithm: str, input_json: str, state_dir: Path | None,
            config_dir: Path | None, data_root: Path | None, code_root: Path | None,
            timeout: float, no_cache: bool) -> None:
    """Call OWNER/NAME[/VERSION] as CALLER with INPUT_JSON on the local runtime.

    INPUT_JSON is a JSON literal, @FILE, or - for stdin. VERSION is a
    published semantic version or a commit (a unique prefix of at least 7 hex
    digits will do); without it, the latest public version, resolved as a
    reservation would. Uses the caller's warm replica when there is one, else
    starts a cold worker for the call. A call runs at most once: when the
    replica fails during it, the error is returned, not retried. Prints the
    output JSON, and "warm|cold, N ms" on stderr.
    """
    from reconciler.runtimes.local.routing import Router

    body = parse_input(input_json)
    state = options.resolve_state_dir(state_dir)
    router = Router(state, load_config=lambda: _load(router, config_dir, no_cache),
                    prefer_config=config_dir is not None, config_dir=config_dir,
                    data_root=data_root, code_root=code_root)
    try:
        started = time.monotonic()
        outcome = router.invoke(caller, algorithm, body, timeout=timeout)
        elapsed = (time.monotonic() - started) * 1000
    finally:
        router.close()
    click.echo(json.dumps(outcome.output))
    note = f" ({outcome.note})" if outcome.note else ""
    click.echo(f"{outcome.how}, {elapsed:.0f} ms{note}", err=True)


def parse_input(text: str) -> bytes:
    """INPUT_JSON (a literal, @FILE or - for stdin), checked to be JSON; its UTF-8 bytes.
    A file or stdin is read up to the most a replica accepts (so @/dev/zero is an error,
    not all memory)."""
    if text == "-":
        raw = _read_bounded(sys.stdin.buffer, "INPUT_JSON from stdin")
    elif text.startswith("@"):
        try:
            with open(text[1:], "rb") as handle:
                raw = _read_bounded(handle, f"input file {text[1:]}")
        except OSError as exc:
            raise ReconcilerError(f"cannot read input file {text[1:]}: "
                                  f"{options.describe_os_error(exc)}") from None
    else:
        raw = text
    try:
        json.loads(raw)
    except RecursionError:
        raise ReconcilerError("INPUT_JSON is nested too deeply to decode (Python's JSON "
                              "decoder stops near 1,000 levels)") from None
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):  # an int past 4,300 digits
            raise ReconcilerError("INPUT_JSON holds a number of more digits than the worker "
                                  "decodes (4,300)") from None
        raise ReconcilerError(f"INPUT_JSON is not JSON: {exc}") from None
    try:
        return raw.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in argv arrive as lone surrogates
        raise ReconcilerError("INPUT_JSON is not UTF-8") from None


def _read_bounded(handle: BinaryIO, what: str) -> str:
    from reconciler.runtimes.local.serve import MAX_BODY

    data = handle.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise ReconcilerError(f"{what} is over {MAX_BODY} bytes, the most a replica "
                              "accepts; nothing was called")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReconcilerError(f"{what} is not UTF-8: {exc.reason}") from None


def _load(router: Any, config_dir: Path | None, no_cache: bool) -> Any:
    """The config to resolve in: --config (its errors are the user's), else the config dir
    the last apply recorded, when it still loads (None otherwise: the pools decide)."""
    from reconciler.config.loader import load_config

    home = config_dir
    if home is None:
        rows = router.store.query("SELECT value FROM meta WHERE key = 'config_dir'") \
            if router.store.exists(router.state_dir) else []
        home = Path(rows[0]["value"]) if rows else Path(".")
    try:
        return load_config(home, cache_dir=options.cache_dir_for(no_cache))
    except (ReconcilerError, OSError):
        if config_dir is not None:
            raise
        return None
