"""Version resolution and access rules (SPEC.md section 2, Reservation). Pure.

Shared by the cross-document rules (which report failures as diagnostics)
and the desired-state compiler (which only sees configs that passed them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from reconciler.config.model import (
    Account,
    Algorithm,
    CapacityLimit,
    Config,
    PoolCount,
    PoolKey,
    Reservation,
    Version,
    VersionType,
    Visibility,
)

SEMVER = re.compile(
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z"
)
COMMIT = re.compile(r"^[0-9a-f]{40}\Z")
# The forms schemas/common.json#/$defs/timestamp allows (RFC 3339)
TIMESTAMP = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})"
                       r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})\Z")
_NEVER = (datetime.min.replace(tzinfo=UTC), Decimal(0))

__all__ = ["PoolCount", "PoolKey", "ResolveError", "access_error", "aggregate_pools",
           "find_version", "limit_target", "may_access", "resolve_version", "semver_key",
           "timestamp_key"]

LATEST = (VersionType.LATEST_PUBLIC, VersionType.LATEST_PRIVATE, VersionType.LATEST_COMPILED)
RESTRICTED_TYPES = (VersionType.LATEST_PRIVATE, VersionType.LATEST_COMPILED)


class ResolveError(Exception):
    """A reservation does not resolve; `path` is the field to blame."""

    def __init__(self, message: str, path: str = "spec.algorithm") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def semver_key(version: str) -> tuple[object, ...]:
    """Sort key of a semantic version with SemVer 2.0 precedence (build metadata ignored)."""
    match = SEMVER.match(version)
    if not match:
        raise ValueError(f"not a semantic version: {version!r}")
    major, minor, patch, pre = int(match[1]), int(match[2]), int(match[3]), match[4]
    if pre is None:
        return (major, minor, patch, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (major, minor, patch, 0, ids)


def timestamp_key(text: str) -> tuple[datetime, Decimal]:
    """An RFC 3339 timestamp as a sortable instant: (whole seconds in UTC, the
    fraction exactly as written). Offsets are applied, so "10:00:00+02:00" is
    before "09:00:00Z"; any number of fraction digits is kept. ValueError when
    the text is not such a timestamp, or names no real time (month 13)."""
    match = TIMESTAMP.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    date, time, fraction, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        instant = datetime.fromisoformat(f"{date}T{time}{offset}").astimezone(UTC)
    except OverflowError as exc:  # "0001-01-01T00:00:00+01:00" is before year 1 in UTC
        raise ValueError(f"out of range: {text!r}") from exc
    return instant, Decimal(f"0.{fraction or 0}")


def _compiled_key(version: Version) -> tuple[tuple[datetime, Decimal], int]:
    try:
        instant = timestamp_key(version.compiled_at)
    except ValueError:
        instant = _NEVER  # reported by the rules; the config cannot be used anyway
    return instant, version.index


def may_access(caller: str, owner: str, accounts: Mapping[str, Account]) -> bool:
    """The owner, a member of the owning organization, or the organization itself."""
    if caller == owner:
        return True
    owning = accounts.get(owner)
    return owning is not None and caller in owning.members


def resolve_version(reservation: Reservation, algorithm: Algorithm) -> Version:
    """The version a reservation selects, per SPEC.md's version-type table."""
    selector = reservation.version_selector
    vtype = reservation.version_type
    if vtype in LATEST:
        if selector is not None:
            raise ResolveError(
                f"versionType {vtype} takes no VERSION in algorithm, got {reservation.algorithm!r}"
            )
        if vtype is VersionType.LATEST_COMPILED:
            candidates = list(algorithm.versions)
            if not candidates:
                raise ResolveError(f"algorithm {algorithm.ref} has no versions")
            return max(candidates, key=_compiled_key)
        wanted = Visibility.PUBLIC if vtype is VersionType.LATEST_PUBLIC else Visibility.PRIVATE
        published = [v for v in algorithm.versions if v.visibility is wanted and v.version]
        if not published:
            raise ResolveError(f"algorithm {algorithm.ref} has no {wanted} version")
        return max(published, key=lambda v: semver_key(v.version or ""))
    if selector is None:
        raise ResolveError(
            f"versionType {vtype} needs OWNER/NAME/VERSION in algorithm, "
            f"got {reservation.algorithm!r}"
        )
    if vtype is VersionType.SEMANTIC:
        if not SEMVER.match(selector):
            raise ResolveError(f"versionType semantic needs a semantic version, got {selector!r}")
        for version in algorithm.versions:
            if version.version == selector and version.visibility is not Visibility.UNPUBLISHED:
                return version
        raise ResolveError(f"algorithm {algorithm.ref} has no published version {selector}")
    if not COMMIT.match(selector):
        raise ResolveError(f"versionType hash needs a 40-hex commit, got {selector!r}")
    for version in algorithm.versions:
        if version.commit == selector:
            return version
    raise ResolveError(f"algorithm {algorithm.ref} has no version with commit {selector}")


def access_error(
    reservation: Reservation, algorithm: Algorithm, version: Version,
    accounts: Mapping[str, Account],
) -> str | None:
    """Why the caller may not reserve this version, or None when it may."""
    if may_access(reservation.caller, algorithm.owner, accounts):
        return None
    if reservation.version_type in RESTRICTED_TYPES:
        return (
            f"caller {reservation.caller} may not use versionType {reservation.version_type}: "
            f"only {algorithm.owner} and its members may"
        )
    if version.visibility is not Visibility.PUBLIC:
        return (
            f"caller {reservation.caller} may not reserve {version.visibility} version "
            f"{version.version or version.commit} of {algorithm.ref}: "
            f"only {algorithm.owner} and its members may"
        )
    return None


def find_version(algorithm: Algorithm, selector: str) -> Version | None:
    """A version by semantic version or commit (CapacityLimit's algorithm scope)."""
    for version in algorithm.versions:
        if selector in (version.version, version.commit):
            return version
    return None


def limit_target(limit: CapacityLimit,
                 algorithms: Mapping[str, Algorithm]) -> tuple[Algorithm, Version] | None:
    """The algorithm version a version-scope CapacityLimit names, when it exists."""
    if limit.algorithm_ref is None or limit.version_selector is None:
        return None
    algorithm = algorithms.get(limit.algorithm_ref)
    if algorithm is None:
        return None
    version = find_version(algorithm, limit.version_selector)
    return None if version is None else (algorithm, version)


def aggregate_pools(config: Config) -> dict[PoolKey, PoolCount]:
    """Count reservations into warm pools: the one place that does so.

    Reservations resolving to the same (caller, OWNER/NAME, commit) add up; a
    version's minimumParallelCapacity raises (or adds) the owner's pool to at
    least that many replicas. Reservations that do not resolve, or that the
    caller may not make, are skipped: the rules report them. Pure.
    """
    pools: dict[PoolKey, PoolCount] = {}
    _count_reservations(config, pools)
    _apply_minimums(config, pools)
    return pools


def _count_reservations(config: Config, pools: dict[PoolKey, PoolCount]) -> None:
    # Many reservations select the same version the same way: resolve each
    # (algorithm, versionType, VERSION) once, with the tail of its reasons. None: it does
    # not resolve. Counts are gathered in lists and made into PoolCounts once, at the end.
    resolved: dict[tuple[str, VersionType], tuple[Algorithm, Version, str] | None] = {}
    members = {name: frozenset(account.members) for name, account in config.accounts.items()
               if account.members}
    gathered: dict[PoolKey, tuple[str, Algorithm, Version, list[int], list[str], list[str]]] = {}
    accounts, reservations = config.accounts, config.reservations
    for name in sorted(reservations):
        reservation = reservations[name]
        how = (reservation.algorithm, reservation.version_type)
        if how in resolved:
            target = resolved[how]
        else:
            target = resolved[how] = _resolve(reservation, config.algorithms)
        if target is None:
            continue
        caller = reservation.caller
        if caller not in accounts:
            continue
        algorithm, version, tail = target
        owner = algorithm.owner
        # may_access (the owner or one of its members) needs no further check
        if caller != owner and caller not in members.get(owner, ()) and \
                access_error(reservation, algorithm, version, accounts):
            continue
        key = (caller, algorithm.ref, version.commit)
        entry = gathered.get(key)
        if entry is None:
            entry = gathered[key] = (caller, algorithm, version, [], [], [])
        entry[3].append(reservation.replicas)
        entry[4].append(name)
        entry[5].append("reservation " + name + tail)
    for key, (caller, algo, found, replicas, sources, reasons) in gathered.items():
        pools[key] = PoolCount(caller, algo, found, sum(replicas), tuple(sources),
                               tuple(reasons))


def _resolve(reservation: Reservation, algorithms: Mapping[str, Algorithm],
             ) -> tuple[Algorithm, Version, str] | None:
    """(algorithm, version, the tail of its reasons: " (TYPE -> LABEL)") a reservation
    selects; None when it does not resolve."""
    algorithm = algorithms.get(reservation.algorithm_ref)
    if algorithm is None:
        return None
    try:
        version = resolve_version(reservation, algorithm)
    except ResolveError:
        return None
    label = version.version or version.commit[:12]
    return algorithm, version, f" ({reservation.version_type} -> {label})"


def _apply_minimums(config: Config, pools: dict[PoolKey, PoolCount]) -> None:
    for limit in sorted(config.limits.values(), key=lambda lim: lim.name):
        if not limit.algorithm or not limit.minimum_parallel_capacity:
            continue
        target = limit_target(limit, config.algorithms)
        if target is None or target[0].owner not in config.accounts:
            continue
        algorithm, version = target
        minimum = limit.minimum_parallel_capacity
        key = (algorithm.owner, algorithm.ref, version.commit)
        source = f"CapacityLimit/{limit.name}"
        reason = f"capacity limit {limit.name} (minimumParallelCapacity {minimum})"
        known = pools.get(key)
        if known is None:
            pools[key] = PoolCount(algorithm.owner, algorithm, version, minimum,
                                   (source,), (reason,))
        elif known.replicas < minimum:
            pools[key] = replace(known, replicas=minimum, sources=known.sources + (source,),
                                 reasons=known.reasons + (reason,))
