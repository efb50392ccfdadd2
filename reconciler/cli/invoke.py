"""`reconciler invoke --as CALLER OWNER/NAME[/VERSION] INPUT_JSON`: call an algorithm.

Routes to a warm replica of the CALLER's own pool for that version (warm
instances are never shared across accounts). With none, it starts a cold
worker for this one call, then stops it, and says so. Without VERSION it
calls the latest public version, as Algorithmia's API does. A caller may call
a private or unpublished version only as the owner or a member of the owning
organization. The output JSON goes to stdout; "warm|cold, N ms" to stderr.
"""

from __future__ import annotations

import json
import random
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import click

from reconciler.cli import options
from reconciler.cli.durations import DURATION
from reconciler.errors import ReconcilerError
from reconciler.states import LiveState, WarmPool, pool_id

REF = re.compile(r"^([a-z0-9-]+)/([a-z0-9-]+)(?:/([^/]+))?$")
PREFIX = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass(frozen=True)
class Target:
    """The version to call and what a worker needs to serve it."""

    owner: str
    name: str
    commit: str
    label: str  # version, or the commit's head when unpublished
    entrypoint: str
    model_path: str
    model_digest: str


@click.command("invoke")
@click.option("--as", "caller", required=True, metavar="CALLER", help="The calling account.")
@click.argument("algorithm", metavar="OWNER/NAME[/VERSION]")
@click.argument("input_json", metavar="INPUT_JSON")
@options.state_option
@click.option("--config", "config_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Config repository [default: the one last applied, else .].")
@options.code_data_options
@click.option("--timeout", type=DURATION, default="30s", show_default=True,
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
    starts a cold worker for the call. Prints the output JSON, and
    "warm|cold, N ms" on stderr.
    """
    from reconciler.runtimes import open_runtime

    payload = parse_input(input_json)
    match = REF.match(algorithm)
    if not match:
        raise ReconcilerError(f"expected OWNER/NAME[/VERSION], got {algorithm!r}")
    owner, name, selector = match.groups()
    runtime = open_runtime("local", state_dir=options.resolve_state_dir(state_dir))
    try:
        live = runtime.observe()
        roots = runtime.report().get("roots", {})
        config_home = config_dir or Path(roots.get("config_dir") or ".")
        config = _load(config_home, explicit=config_dir is not None,
                       cache_dir=options.cache_dir_for(no_cache))
        target = (resolve_in_config(config, caller, owner, name, selector) if config
                  and f"{owner}/{name}" in config.algorithms
                  else resolve_in_store(live, caller, owner, name, selector))
        ports = runtime.ready_endpoints(pool_id(caller, owner, name, target.commit))
    finally:
        runtime.close()
    started = time.monotonic()
    output, how = call_warm(ports, payload, timeout), "warm"
    if output is _NO_REPLICA:
        data = data_root or Path(roots.get("data_root") or config_home / "data")
        code = code_root or Path(roots.get("code_root") or config_home / "src")
        output, how = call_cold(target, data, code, payload, timeout), "cold"
    elapsed = (time.monotonic() - started) * 1000
    click.echo(json.dumps(output))
    note = "" if how == "warm" else (f" (no warm replica of {caller} for {owner}/{name} "
                                     f"{target.label}; started a worker for this call)")
    click.echo(f"{how}, {elapsed:.0f} ms{note}", err=True)


def parse_input(text: str) -> Any:
    if text == "-":
        try:
            raw = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise ReconcilerError(f"INPUT_JSON from stdin is not UTF-8: {exc.reason}") from None
    elif text.startswith("@"):
        try:
            raw = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ReconcilerError(f"cannot read input file {text[1:]}: "
                                  f"{options.describe_os_error(exc)}") from None
        except UnicodeDecodeError as exc:
            raise ReconcilerError(f"input file {text[1:]} is not UTF-8: {exc.reason}") from None
    else:
        raw = text
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ReconcilerError(f"INPUT_JSON is not JSON: {exc}") from None


def _load(config_dir: Path, *, explicit: bool, cache_dir: Path | None) -> Any:
    """The config, or None when the implicit one does not load (the store then decides)."""
    from reconciler.config.loader import load_config

    try:
        return load_config(config_dir, cache_dir=cache_dir)
    except (ReconcilerError, OSError):
        if explicit:
            raise
        return None


def selection(selector: str | None, commits: Iterable[str], ref: str) -> tuple[str, str | None]:
    """How OWNER/NAME[/VERSION] selects a version, as a reservation would: (version type,
    selector). No VERSION: latest-public; a semantic version: semantic; a commit: hash,
    where a unique prefix of at least 7 hex digits stands for the whole commit."""
    from reconciler.config.resolve import COMMIT, SEMVER

    if selector is None:
        return "latest-public", None
    if SEMVER.match(selector):
        return "semantic", selector
    if COMMIT.match(selector):
        return "hash", selector
    if not PREFIX.match(selector):
        raise ReconcilerError(f"{ref} has no version {selector}: expected a semantic version "
                              f"or a commit (at least 7 hex digits)")
    matches = sorted({commit for commit in commits if commit.startswith(selector)})
    if not matches:
        raise ReconcilerError(f"{ref} has no version with a commit starting {selector}")
    if len(matches) > 1:
        raise ReconcilerError(f"commit prefix {selector} of {ref} is ambiguous: it matches "
                              f"{', '.join(matches)}; give more digits")
    return "hash", matches[0]


def resolve_in_config(config: Any, caller: str, owner: str, name: str,
                      selector: str | None) -> Target:
    """The version the call selects, resolved exactly as a reservation of it would be."""
    from reconciler.config.model import (
        Document,
        Kind,
        Location,
        Metadata,
        Reservation,
        VersionType,
    )
    from reconciler.config.resolve import ResolveError, may_access, resolve_version

    ref = f"{owner}/{name}"
    algorithm = config.algorithms[ref]
    if caller not in config.accounts:
        raise ReconcilerError(f"unknown account {caller!r}: it is not in the config")
    vtype, selected = selection(selector, (v.commit for v in algorithm.versions), ref)
    call = Reservation(doc=Document(Kind.RESERVATION, Metadata("invoke"),
                                    Location("<command line>")),
                       caller=caller, algorithm=f"{ref}/{selected}" if selected else ref,
                       version_type=VersionType(vtype), replicas=1)
    try:
        version = resolve_version(call, algorithm)
    except ResolveError as exc:
        hint = f"; name one as {ref}/VERSION" if selector is None else ""
        raise ReconcilerError(f"{exc.message}{hint}") from None
    if version.visibility != "public" and not may_access(caller, owner, config.accounts):
        raise ReconcilerError(
            f"{caller} may not call {version.visibility} version "
            f"{version.version or version.commit[:12]} of {ref}: only {owner} and "
            f"its members may")
    return Target(owner, name, version.commit, version.version or version.commit[:12],
                  algorithm.entrypoint, version.model.path, version.model.digest)


def resolve_in_store(live: LiveState, caller: str, owner: str, name: str,
                     selector: str | None) -> Target:
    """Without a config: the versions the store's pools know (the same selection rules as
    resolve_in_config, over what the pools record)."""
    from reconciler.config.resolve import semver_key

    ref = f"{owner}/{name}"
    pools = [p for p in live.pools if p.owner == owner and p.name == name]
    vtype, selected = selection(selector, (p.commit for p in pools), ref)
    if vtype == "latest-public":
        candidates = [p for p in pools if p.visibility == "public" and p.version]
        if not candidates:
            raise ReconcilerError(f"unknown algorithm {ref}: no config found (use --config) "
                                  f"and no public version in the local store")
        pool = max(candidates, key=lambda p: semver_key(p.version or ""))
    else:
        if vtype == "semantic":  # as resolve_version: a published version of that number
            found = [p for p in pools if p.version == selected and p.visibility != "unpublished"]
        else:
            found = [p for p in pools if p.commit == selected]
        if not found:
            raise ReconcilerError(f"{ref} has no version {selector} in the local store "
                                  f"(use --config to name the config repository)")
        pool = found[0]
    own = [p for p in pools if p.caller == caller and p.commit == pool.commit]
    if pool.visibility != "public" and not own and caller != owner:
        raise ReconcilerError(f"{caller} may not call {pool.visibility} version of "
                              f"{ref}: only {owner} and its members may")
    return _target(pool)


def _target(pool: WarmPool) -> Target:
    return Target(pool.owner, pool.name, pool.commit, pool.version or pool.commit[:12],
                  pool.entrypoint, pool.model_path, pool.model_digest)


_NO_REPLICA = object()


class Unreachable(Exception):
    """The worker did not take the call (gone, refusing, or hung up): another may."""


def post(port: int, payload: Any, timeout: float) -> Any:
    """POST /invoke; the output. ReconcilerError carrying the algorithm's error, or saying
    the call timed out; Unreachable when the worker cannot be reached."""
    request = Request(f"http://127.0.0.1:{port}/invoke", data=json.dumps(payload).encode(),
                      headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urlopen(request, timeout=timeout) as response:
            body = response.read()
    except HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", str(exc))
        except (ValueError, AttributeError, OSError):
            message = str(exc)
        raise ReconcilerError(f"algorithm error: {message}") from None
    except TimeoutError:
        raise ReconcilerError(f"the call did not finish within {timeout:g}s "
                              f"(--timeout)") from None
    except URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise ReconcilerError(f"the worker did not answer within {timeout:g}s "
                                  f"(--timeout)") from None
        raise Unreachable(str(exc.reason)) from None
    except OSError as exc:  # reset or hung up mid-call
        raise Unreachable(str(exc)) from None
    try:
        return json.loads(body)["output"]
    except (ValueError, KeyError, TypeError):
        raise ReconcilerError(f"the worker on port {port} sent an invalid answer: "
                              f"{body[:200]!r}") from None


def call_warm(ports: list[int], payload: Any, timeout: float) -> Any:
    """Try the caller's ready replicas in turn; _NO_REPLICA when none answers."""
    for port in random.sample(ports, len(ports)):  # spread calls over the replicas
        try:
            return post(port, payload, timeout)
        except Unreachable:
            continue  # the replica went away since the store was read: try the next
    return _NO_REPLICA


def call_cold(target: Target, data_root: Path, code_root: Path, payload: Any,
              timeout: float) -> Any:
    """Start a worker for this one call (it verifies the digest like any replica), then stop it."""
    from reconciler.runtimes.local.procs import WORKER_SCRIPT

    args = [sys.executable, str(WORKER_SCRIPT), "--pool", f"cold:{target.commit[:12]}",
            "--entrypoint", target.entrypoint, "--code-root", str(code_root.resolve()),
            "--data-root", str(data_root.resolve()), "--model", target.model_path,
            "--digest", target.model_digest, "--exit-with-stdin"]
    # stdin stays an open pipe for the call: the worker exits when it closes, so a
    # kill -9 of invoke never leaves it behind.
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        report = _first_report(proc, timeout)
        if not report.get("ready"):
            raise ReconcilerError(f"cold start of {target.owner}/{target.name} "
                                  f"{target.label} failed: {report.get('error')}")
        try:
            return post(int(report["port"]), payload, timeout)
        except Unreachable as exc:
            raise ReconcilerError(f"the cold worker of {target.owner}/{target.name} "
                                  f"{target.label} went away during the call: {exc}") from None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _first_report(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else b""
    if not line:
        raise ReconcilerError(f"the cold worker did not warm up within {timeout:g}s")
    try:
        return dict(json.loads(line))
    except (ValueError, TypeError):
        raise ReconcilerError(f"the cold worker reported {line[:200]!r}, not its "
                              f"JSON status line") from None
