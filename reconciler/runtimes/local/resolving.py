"""Which version a call selects when the store's route cannot say: from the config, else
from the pools. Both resolve exactly as a reservation of the version would, and apply the
access rules (only the owner and its members call private or unpublished versions)."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.config.model import Config
from reconciler.errors import ReconcilerError
from reconciler.runtimes.local.routing import PREFIX, Target
from reconciler.states import WarmPool


def selection(selector: str | None, commits: Iterable[str], ref: str) -> tuple[str, str | None]:
    """How OWNER/NAME[/VERSION] selects a version, as a reservation would: (version type,
    selector). No VERSION: latest-public; a semantic version: semantic; a commit: hash,
    where a unique prefix of at least 7 hex digits (among `commits`) stands for the whole
    commit."""
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


def resolve_in_config(config: Config, caller: str, owner: str, name: str,
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


def resolve_in_pools(pools: Iterable[WarmPool], caller: str, owner: str, name: str,
                     selector: str | None) -> Target:
    """Without a config: the versions the store's pools know (the same selection rules as
    resolve_in_config, over what the pools record)."""
    from reconciler.config.resolve import semver_key

    ref = f"{owner}/{name}"
    found_pools = [p for p in pools if p.owner == owner and p.name == name]
    vtype, selected = selection(selector, (p.commit for p in found_pools), ref)
    if vtype == "latest-public":
        candidates = [p for p in found_pools if p.visibility == "public" and p.version]
        if not candidates:
            raise ReconcilerError(f"unknown algorithm {ref}: no config found (use --config) "
                                  f"and no public version in the local store")
        pool = max(candidates, key=lambda p: semver_key(p.version or ""))
    else:
        if vtype == "semantic":  # as resolve_version: a published version of that number
            found = [p for p in found_pools
                     if p.version == selected and p.visibility != "unpublished"]
        else:
            found = [p for p in found_pools if p.commit == selected]
        if not found:
            raise ReconcilerError(f"{ref} has no version {selector} in the local store "
                                  f"(use --config to name the config repository)")
        pool = found[0]
    own = [p for p in found_pools if p.caller == caller and p.commit == pool.commit]
    if pool.visibility != "public" and not own and caller != owner:
        raise ReconcilerError(f"{caller} may not call {pool.visibility} version of "
                              f"{ref}: only {owner} and its members may")
    return Target(pool.owner, pool.name, pool.commit, pool.version or pool.commit[:12],
                  pool.entrypoint, pool.model_path, pool.model_digest)
