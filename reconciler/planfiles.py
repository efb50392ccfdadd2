"""Plan files: written by `plan --out`, applied by `apply --plan`, untrusted in between.

A plan file is data that may have travelled (a CI artifact, a pull request,
/tmp): SPEC.md section 7. Three layers keep an edited or hostile one out:

1. Reading: at most RECONCILER_MAX_PLAN_BYTES (default 256 MiB), UTF-8 JSON,
   no NaN/Infinity, not nested past what the parser takes, every field of
   the expected type (Plan.from_json): a clean error, never a traceback.
2. Signature: `plan --out` signs the canonical JSON of everything in the
   file (actions, errors, warnings, options, fingerprint, ...) with
   HMAC-SHA256 under a key kept in the state directory (STATE/plan.key,
   32 random bytes, created by the first `plan --out`, readable by its owner
   only). A plain hash would only catch accidents: whoever edits the file
   can recompute it. The key is what makes "`plan` wrote this with this
   state directory" checkable: editing a file, or taking a plan made for
   another state directory, is refused. Whoever can read the key can also
   write the state directory itself, so the key adds no new way in.
3. Re-checks against the live state before any write (plan.recheck): the
   staleness check, the re-derivation of the actions, safety and capacity
   on the nodes of now, access rules where the config is at hand. These
   hold even for a correctly signed file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Any

from reconciler.errors import PlanRefused, ReconcilerError
from reconciler.files import replace_file
from reconciler.plan.plans import FORMAT_VERSION, Plan

KEY_NAME = "plan.key"
SIGNATURE = "signature"
ALGORITHM = "hmac-sha256"
DEFAULT_MAX_PLAN_BYTES = 256 * 1024 * 1024
_KEY_TEXT = re.compile(r"^[0-9a-f]{64}\n?$")


def max_plan_bytes() -> int:
    try:
        return int(os.environ.get("RECONCILER_MAX_PLAN_BYTES", DEFAULT_MAX_PLAN_BYTES))
    except ValueError:
        return DEFAULT_MAX_PLAN_BYTES


# --- the key ----------------------------------------------------------------------------


def state_key(state_dir: Path, *, create: bool) -> bytes | None:
    """STATE/plan.key; None when it does not exist and `create` is False. Created (with the
    state directory) when missing and `create` is True. ReconcilerError when it cannot be
    read or made, is not a regular file only its owner can read, or is damaged."""
    path = Path(state_dir) / KEY_NAME
    try:
        return _read_key(path)
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:
        raise ReconcilerError(f"cannot read the plan key {path}: {exc.strerror or exc}") from None
    try:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{KEY_NAME}.", dir=state_dir)  # mode 600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)  # whole or not at all; never over another's key
        finally:
            os.unlink(tmp)
    except FileExistsError:
        pass  # another `plan --out` made it first: use that one
    except OSError as exc:
        raise ReconcilerError(
            f"cannot create the plan key {path}: {exc.strerror or exc}; `plan --out` signs "
            f"plan files with a key kept in the state directory (use a writable --state, or "
            f"leave out --out)") from None
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ReconcilerError(f"the plan key {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ReconcilerError(f"the plan key {path} can be read by others (mode "
                                  f"{stat.S_IMODE(info.st_mode):o}): run `chmod 600 {path}`")
        text = handle.read(100).decode("ascii", "replace")
    if not _KEY_TEXT.match(text):
        raise ReconcilerError(f"the plan key {path} is damaged; delete it (plan files signed "
                              f"with it can then no longer be applied) and plan again")
    return bytes.fromhex(text.strip())


def key_id(key: bytes) -> str:
    """A name for a key that does not reveal it."""
    return hashlib.sha256(b"reconciler plan key\0" + key).hexdigest()[:16]


# --- signing ------------------------------------------------------------------------------


def canonical(data: dict[str, Any]) -> bytes:
    """What is signed: every field but the signature, sorted, compact."""
    body = {k: v for k, v in data.items() if k != SIGNATURE}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def sign(data: dict[str, Any], key: bytes) -> dict[str, Any]:
    """`data` with its signature (the plan's JSON form, signed with `key`)."""
    value = hmac.new(key, canonical(data), hashlib.sha256).hexdigest()
    return {**data, SIGNATURE: {"algorithm": ALGORITHM, "keyId": key_id(key), "value": value}}


def verify(data: dict[str, Any], key: bytes | None, path: Path, state_dir: Path) -> None:
    """PlanRefused unless `data` carries a signature made with `key` over what it holds."""
    how = f"make the plan again with `reconciler plan --out {path} --state {state_dir}`"
    signature = data.get(SIGNATURE)
    if not isinstance(signature, dict):
        raise PlanRefused(f"plan file {path} is not signed: only files written by "
                          f"`reconciler plan --out` can be applied; {how}; nothing was applied")
    if key is None:
        raise PlanRefused(f"plan file {path} was signed with a state directory's plan key, but "
                          f"{state_dir} has none ({state_dir / KEY_NAME}): apply a plan with the "
                          f"--state it was made with; nothing was applied")
    if signature.get("algorithm") != ALGORITHM:
        raise PlanRefused(f"plan file {path} has an unknown signature algorithm "
                          f"{signature.get('algorithm')!r}; {how}; nothing was applied")
    if signature.get("keyId") != key_id(key):
        raise PlanRefused(f"plan file {path} was signed with another state directory's plan "
                          f"key, not {state_dir / KEY_NAME}: apply a plan with the --state it "
                          f"was made with; nothing was applied")
    try:
        expected = hmac.new(key, canonical(data), hashlib.sha256).hexdigest()
    except (RecursionError, ValueError):
        expected = ""  # nothing `plan` writes: refused below
    value = signature.get("value")
    if not isinstance(value, str) or not expected or \
            not hmac.compare_digest(value.encode("utf-8", "replace"), expected.encode()):
        raise PlanRefused(f"plan file {path} was changed after `plan` wrote it (its signature "
                          f"does not match its content); {how}; nothing was applied")


# --- reading and writing ------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    """The plan file's JSON object; ReconcilerError for anything that is not a sane one."""
    limit = max_plan_bytes()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ReconcilerError(f"plan file {path} is not a regular file")
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        raise ReconcilerError(f"plan file {path} does not exist") from None
    except OSError as exc:
        raise ReconcilerError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise ReconcilerError(f"plan file {path} is over {limit} bytes "
                              f"(RECONCILER_MAX_PLAN_BYTES); refused")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                          parse_int=_bounded_int)
    except UnicodeDecodeError as exc:
        raise ReconcilerError(f"plan file {path} is not UTF-8 ({exc.reason} at byte "
                              f"{exc.start})") from None
    except RecursionError:
        raise ReconcilerError(f"plan file {path} is nested too deeply to be a plan; "
                              f"refused") from None
    except (json.JSONDecodeError, ValueError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ReconcilerError(f"plan file {path} is not JSON ({why}{where}); write one with "
                              f"`reconciler plan --out {path}`") from None
    if not isinstance(data, dict) or data.get("formatVersion") != FORMAT_VERSION:
        found = data.get("formatVersion") if isinstance(data, dict) else None
        raise ReconcilerError(
            f"plan file {path} has formatVersion {found!r}, expected {FORMAT_VERSION}; "
            f"write it again with this version's `reconciler plan --out`")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    """No field of a plan needs more than a few digits; Python refuses past 4,300 with
    advice about sys.set_int_max_str_digits that means nothing to a user."""
    if len(text) > 40:
        raise ValueError(f"a number of {len(text)} digits")
    return int(text)


def load(path: Path, *, state_dir: Path | None = None) -> Plan:
    """A plan file as a Plan. With `state_dir`, its signature must be that state's key's
    (PlanRefused otherwise); a plan `plan` refused is refused again (PlanRefused)."""
    path = Path(path)
    data = read_json(path)
    if state_dir is not None:
        verify(data, state_key(state_dir, create=False), path, Path(state_dir))
    try:
        plan = Plan.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReconcilerError(f"plan file {path} is malformed: {exc}") from None
    if data.get("applyable") is not True and not plan.errors:
        raise ReconcilerError(f"plan file {path} is malformed: applyable is "
                              f"{data.get('applyable')!r} but it lists no errors")
    return plan


def write(plan: Plan, path: Path, *, data: dict[str, Any] | None = None,
          key: bytes | None = None) -> dict[str, Any]:
    """Write the plan's JSON form (signed with `key` when given) atomically: a temp file and
    a rename in the same directory. Returns what was written. `data`: the plan's JSON form
    when the caller already has it (it costs ~0.1 s per 10,000 actions to make)."""
    from reconciler.plan.render import render_json

    path = Path(path)
    data = plan.to_json() if data is None else data
    if key is not None:
        data = sign(data, key)
    text = render_json(data) + "\n"
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        replace_file(directory / path.name, text, mode=None)
    except OSError as exc:
        raise ReconcilerError(f"cannot write plan file {path}: {exc}") from None
    return data
