"""Cross-document rules (SPEC.md sections 2 and 3): every problem, collected.

Each rule looks at the whole model and returns diagnostics; none raises. A
document that failed its schema is not in the model, but its identity is
known (`Ghosts`), so references to it are not reported a second time as
dangling: one typo gives one error, not one per reservation that uses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.config.model import (
    Account,
    AccountType,
    Algorithm,
    CapacityLimit,
    Config,
    Document,
    Processor,
    Reservation,
    Settings,
)
from reconciler.config.resolve import (
    ResolveError,
    access_error,
    limit_target,
    resolve_version,
    timestamp_key,
)
from reconciler.errors import Diagnostic, Severity
from reconciler.quantities import parse as parse_quantity

Built = Account | Algorithm | Reservation | CapacityLimit | Settings

# Pool ids and runtime object names carry a commit's first 12 hex digits (states.pool_id)
COMMIT_ID_DIGITS = 12
QUANTITY_EXPECTED = "must be a Kubernetes quantity like 500m, 2, 512Mi or 4Gi"


@dataclass(slots=True)
class Ghosts:
    """Identities of documents that exist but failed structural validation."""

    accounts: set[str] = field(default_factory=set)
    algorithms: set[str] = field(default_factory=set)  # OWNER/NAME


def diag(doc: Document, path: str, message: str, warning: bool = False) -> Diagnostic:
    loc = doc.at(path)
    return Diagnostic(message, loc.file, loc.line, loc.col, path,
                      Severity.WARNING if warning else Severity.ERROR)


def assemble(root: str, items: Iterable[Built], commit: str | None,
             ) -> tuple[Config, list[Diagnostic]]:
    """Index documents by identity; a second document with the same identity is an error."""
    tables: dict[type, dict[str, Built]] = {Account: {}, Algorithm: {}, Reservation: {},
                                            CapacityLimit: {}, Settings: {}}
    diags: list[Diagnostic] = []
    for item in items:
        table = tables[type(item)]
        if isinstance(item, Settings):
            assert item.doc is not None
            if table:
                first_doc = next(iter(table.values())).doc
                diags.append(diag(item.doc, "kind", f"only one Settings document is allowed; "
                                                    f"first at {first_doc.loc}"))  # type: ignore[union-attr]
            table.setdefault("settings", item)
            continue
        key = item.ref if isinstance(item, Algorithm) else item.name
        first = table.get(key)
        if first is not None:
            label = "algorithm" if isinstance(item, Algorithm) else item.doc.kind
            diags.append(diag(item.doc, "metadata.name",
                              f"duplicate {label} {key!r}; first defined at {first.doc.loc}"))  # type: ignore[union-attr]
            continue
        table[key] = item
    settings = next(iter(tables[Settings].values()), None)
    config = Config(root, tables[Account], tables[Algorithm], tables[Reservation],  # type: ignore[arg-type]
                    tables[CapacityLimit], settings or Settings(), commit)  # type: ignore[arg-type]
    return config, diags


def check(config: Config, ghosts: Ghosts, pooled: set[str]) -> list[Diagnostic]:
    """`pooled`: names of reservations that aggregate_pools counted, which
    therefore resolve and are allowed; only the others need a closer look."""
    out: list[Diagnostic] = []
    for account in config.accounts.values():
        out += _account(account, config, ghosts)
    for algorithm in config.algorithms.values():
        out += _algorithm(algorithm, config, ghosts)
    for reservation in config.reservations.values():
        if reservation.name not in pooled:
            out += _reservation(reservation, config, ghosts)
    out += _limits(config, ghosts)
    if config.settings.doc is not None:
        out += _settings(config.settings)
    return out


def _account(account: Account, config: Config, ghosts: Ghosts) -> list[Diagnostic]:
    out = []
    if account.members and account.type is not AccountType.ORGANIZATION:
        out.append(diag(account.doc, "spec.members", "only organizations have members; "
                                                     f"{account.name} is a user"))
    for i, member in enumerate(account.members):
        target = config.accounts.get(member)
        path = f"spec.members[{i}]"
        if target is None and member not in ghosts.accounts:
            out.append(diag(account.doc, path, f"account {member!r} does not exist"))
        elif target is not None and target.type is not AccountType.USER:
            out.append(diag(account.doc, path, f"member {member!r} must be a user account, "
                                               f"got an {target.type}"))
    return out


def _algorithm(algorithm: Algorithm, config: Config, ghosts: Ghosts) -> list[Diagnostic]:
    out = []
    doc = algorithm.doc
    if algorithm.owner not in config.accounts and algorithm.owner not in ghosts.accounts:
        out.append(diag(doc, "spec.owner", f"account {algorithm.owner!r} does not exist"))
    gpu = algorithm.resources.gpu
    if algorithm.processor is Processor.CPU and gpu > 0:
        out.append(diag(doc, "spec.resources.gpu",
                        f"must be 0 on a cpu algorithm (processor: cpu), got {gpu}"))
    if algorithm.processor is Processor.GPU and gpu < 1:
        out.append(diag(doc, "spec.resources.gpu",
                        f"must be >= 1 on a gpu algorithm (processor: gpu), got {gpu}"))
    out += quantity_problems(doc, "spec.resources", algorithm.resources.cpu,
                             algorithm.resources.memory)
    commits: dict[str, int] = {}
    short_ids: dict[str, tuple[str, int]] = {}
    semvers: dict[str, int] = {}
    for version in algorithm.versions:
        base = f"spec.versions[{version.index}]"
        if version.commit in commits:
            out.append(diag(doc, f"{base}.commit", f"commit {version.commit} is already used "
                                                   f"by spec.versions[{commits[version.commit]}]"))
        commits.setdefault(version.commit, version.index)
        short = version.commit[:COMMIT_ID_DIGITS]
        other, other_index = short_ids.setdefault(short, (version.commit, version.index))
        if other != version.commit:
            out.append(diag(doc, f"{base}.commit", f"commit {version.commit} shares its first "
                            f"{COMMIT_ID_DIGITS} hex digits ({short}) with spec.versions"
                            f"[{other_index}] ({other}): warm pool ids and runtime names use "
                            f"{COMMIT_ID_DIGITS} digits, so the two versions would be one pool"))
        try:
            timestamp_key(version.compiled_at)
        except ValueError as exc:
            out.append(diag(doc, f"{base}.compiledAt", f"must be a real point in time "
                            f"(RFC 3339), got {version.compiled_at!r}: {exc}"))
        if version.version is not None:
            if version.version in semvers:
                out.append(diag(doc, f"{base}.version", f"version {version.version} is already "
                                f"used by spec.versions[{semvers[version.version]}]"))
            semvers.setdefault(version.version, version.index)
        problem = data_path_problem(version.model.path)
        if problem:
            out.append(diag(doc, f"{base}.model.path", problem))
        elif not version.model.path.startswith(f"data://{algorithm.owner}/"):
            # another owner's data may be private: serving it through this algorithm
            # would hand it to every caller of this algorithm (SPEC.md section 7)
            other = version.model.path.removeprefix("data://").split("/", 1)[0]
            out.append(diag(doc, f"{base}.model.path", f"model file is under the data of "
                            f"{other}, not of the algorithm's owner {algorithm.owner}: an "
                            f"algorithm may only use data://{algorithm.owner}/..."))
    return out


def quantity_problems(doc: Document, base: str, cpu: str, memory: str) -> list[Diagnostic]:
    """cpu and memory must be Kubernetes quantities the planner and runtimes can use."""
    out = []
    for name, value in (("cpu", cpu), ("memory", memory)):
        try:
            parse_quantity(value)
        except ValueError:
            out.append(diag(doc, f"{base}.{name}", f"{QUANTITY_EXPECTED}, got {value!r}"))
    return out


def data_path_problem(path: str) -> str | None:
    """Why a data:// path may leave the data root (a pure string check)."""
    rest = path.removeprefix("data://")
    segments = rest.split("/")
    if len(segments) < 3:
        return f"must be data://OWNER/COLLECTION/FILE, got {path!r}"
    for segment in segments:
        if segment in ("", ".", ".."):
            return f"must not contain empty, '.' or '..' segments, got {path!r}"
        if "\\" in segment or "\0" in segment:
            return f"must not contain backslashes or NUL, got {path!r}"
    return None


def _reservation(res: Reservation, config: Config, ghosts: Ghosts) -> list[Diagnostic]:
    out = []
    if res.caller not in config.accounts and res.caller not in ghosts.accounts:
        out.append(diag(res.doc, "spec.caller", f"account {res.caller!r} does not exist"))
    algorithm = config.algorithms.get(res.algorithm_ref)
    if algorithm is None:
        if res.algorithm_ref not in ghosts.algorithms:
            out.append(diag(res.doc, "spec.algorithm",
                            f"algorithm {res.algorithm_ref!r} does not exist"))
        return out
    try:
        version = resolve_version(res, algorithm)
    except ResolveError as exc:
        return out + [diag(res.doc, exc.path, exc.message)]
    if res.caller in config.accounts:
        reason = access_error(res, algorithm, version, config.accounts)
        if reason:
            out.append(diag(res.doc, "spec.algorithm", reason))
    return out


def _limits(config: Config, ghosts: Ghosts) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    scopes: dict[tuple[str, str], CapacityLimit] = {}
    for limit in config.limits.values():
        scope = _limit_scope(limit, config, ghosts, out)
        if scope is None:
            continue
        first = scopes.get(scope)
        if first is not None:
            out.append(diag(limit.doc, f"spec.{scope[0]}", f"{scope[1]} already has a capacity "
                            f"limit: {first.name} at {first.doc.loc}"))
        scopes.setdefault(scope, limit)
        low, high = limit.minimum_parallel_capacity, limit.maximum_parallel_capacity
        if low is not None and high is not None and low > high:
            out.append(diag(limit.doc, "spec.minimumParallelCapacity",
                            f"must be <= maximumParallelCapacity ({high}), got {low}"))
    return out


def _limit_scope(limit: CapacityLimit, config: Config, ghosts: Ghosts,
                 out: list[Diagnostic]) -> tuple[str, str] | None:
    """("account", NAME) or ("algorithm", OWNER/NAME@commit), when the target exists."""
    if limit.account is not None:
        if limit.account not in config.accounts:
            if limit.account not in ghosts.accounts:
                out.append(diag(limit.doc, "spec.account",
                                f"account {limit.account!r} does not exist"))
            return None
        return ("account", f"account {limit.account}")
    ref = limit.algorithm_ref
    if ref is None:
        return None
    algorithm = config.algorithms.get(ref)
    if algorithm is None:
        if ref not in ghosts.algorithms:
            out.append(diag(limit.doc, "spec.algorithm", f"algorithm {ref} does not exist"))
        return None
    target = limit_target(limit, config.algorithms)
    if target is None:
        known = ", ".join(v.version or v.commit[:12] for v in algorithm.versions)
        out.append(diag(limit.doc, "spec.algorithm", f"algorithm {algorithm.ref} has no version "
                        f"{limit.version_selector!r} (versions: {known})"))
        return None
    return ("algorithm", f"version {algorithm.ref}@{target[1].commit[:12]}")


def _settings(settings: Settings) -> list[Diagnostic]:
    out = []
    assert settings.doc is not None
    names: set[str] = set()
    for i, node in enumerate(settings.local_nodes or ()):
        base = f"spec.local.nodes[{i}]"
        if node.name in names:
            out.append(diag(settings.doc, f"{base}.name", f"duplicate node name {node.name!r}"))
        names.add(node.name)
        if node.processor is Processor.GPU and node.gpu < 1:
            out.append(diag(settings.doc, f"{base}.gpu",
                            f"must be >= 1 on a gpu node, got {node.gpu}"))
        if node.processor is Processor.CPU and node.gpu > 0:
            out.append(diag(settings.doc, f"{base}.gpu",
                            f"must be 0 on a cpu node (processor: cpu), got {node.gpu}"))
        out += quantity_problems(settings.doc, base, node.cpu, node.memory)
    return out
