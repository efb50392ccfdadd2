"""The Plan value: ordered actions, fingerprint, summary, diagnostics.

A Plan is immutable and self-contained: its JSON form (formatVersion 1,
SPEC.md section 5) carries every object an action writes, so
`apply --plan FILE` needs nothing but the file and the live state.
Renderers are computed from `Plan.to_json()`, never from the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from typing import Any

from reconciler.errors import Diagnostic, Severity
from reconciler.states import Quota, ResourceKind, Tenant, WarmPool

FORMAT_VERSION = 1


class Op(StrEnum):
    CREATE = "create"
    SCALE = "scale"  # replicas changed
    RELOAD = "reload"  # the version's model path or digest changed
    UPDATE = "update"  # image, resources, processor or entrypoint changed
    DELETE = "delete"


OPS = tuple(Op)

Resource = Tenant | Quota | WarmPool


@dataclass(frozen=True, slots=True)
class Change:
    """One field that differs: `path` is the field's name in the JSON form."""

    path: str
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan. `before` is the live object (None on create),
    `after` the desired one (None on delete). A delete with `wait_for` set is
    the old side of a version move: it runs only once pool `wait_for` is ready
    (make-before-break); when that does not happen in time it is deferred.
    `in_place` (only with --allow-reduced-capacity): the transient surge of a
    move or rolling reload does not fit the nodes, so replace replicas in
    place, keeping replicas-1 warm."""

    op: Op
    kind: ResourceKind
    id: str
    before: Resource | None = None
    after: Resource | None = None
    reason: str = ""
    changes: tuple[Change, ...] = ()
    wait_for: str | None = None
    in_place: bool = False  # the surge does not fit: replace in place keeping replicas-1 warm

    @property
    def obj(self) -> Resource:
        """The object acted on: the desired one, or the live one for a delete."""
        target = self.after if self.after is not None else self.before
        assert target is not None, "an action has a before or an after"
        return target

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"op": str(self.op), "kind": str(self.kind), "id": self.id}
        pool = self.obj
        if isinstance(pool, WarmPool):
            before = self.before.replicas if isinstance(self.before, WarmPool) else None
            after = self.after.replicas if isinstance(self.after, WarmPool) else None
            data.update(
                caller=pool.caller,
                algorithm=pool.algorithm,
                version=pool.version,
                commit=pool.commit,
                replicas={"before": before, "after": after},
            )
        elif isinstance(pool, Tenant | Quota):
            data["account"] = pool.account
        data["reason"] = self.reason
        data["changes"] = [change.to_json() for change in self.changes]
        if self.wait_for:
            data["waitFor"] = self.wait_for
        if self.in_place:
            data["inPlace"] = True
        data["object"] = {
            "before": _resource_json(self.before),
            "after": _resource_json(self.after),
        }
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Action:
        """The action of a plan file; ValueError (naming the field) for a wrong shape."""
        _expect(data, dict, "action")
        kind = ResourceKind(_expect(data.get("kind"), str, "kind"))
        objects = _expect(data.get("object") or {}, dict, "object")
        changes = _expect(data.get("changes", []), list, "changes")
        return cls(
            op=Op(_expect(data.get("op"), str, "op")),
            kind=kind,
            id=_expect(data.get("id"), str, "id"),
            before=_resource_from_json(kind, objects.get("before")),
            after=_resource_from_json(kind, objects.get("after")),
            reason=_expect(data.get("reason", ""), str, "reason"),
            changes=tuple(
                Change(_expect(_expect(c, dict, "changes[]").get("path"), str, "changes[].path"),
                       c.get("before"), c.get("after")) for c in changes
            ),
            wait_for=_expect(data.get("waitFor"), (str, type(None)), "waitFor"),
            in_place=_expect(data.get("inPlace", False), bool, "inPlace"),
        )


def _resource_json(resource: Resource | None) -> dict[str, Any] | None:
    if resource is None:
        return None
    if isinstance(resource, WarmPool):
        return resource.to_json()
    if isinstance(resource, Tenant):
        return {"account": resource.account, "type": resource.type}
    return {
        "account": resource.account,
        "max_engines": resource.max_engines,
        "max_gpus": resource.max_gpus,
        "source": resource.source,
    }


def _resource_from_json(kind: ResourceKind, data: Mapping[str, Any] | None) -> Resource | None:
    if data is None:
        return None
    cls, shape = _SHAPES[kind]
    _expect(data, dict, f"{kind} object")
    for name, types, required in shape:
        value = data.get(name, _ABSENT)
        if value is _ABSENT:
            if required:
                raise ValueError(f"{kind} object has no {name}")
        elif type(value) not in types:
            _expect(value, types, f"{kind}.{name}")  # raises, naming what was expected
        elif types is _LIST and not all(type(item) is str for item in value):
            raise ValueError(f"{kind}.{name} must hold strings only")
    if kind is ResourceKind.WARM_POOL:
        return WarmPool.from_json(data)
    return cls(**data)  # type: ignore[no-any-return]


_ABSENT = object()
_LIST = (list,)
# A field's annotation (a string: `from __future__ import annotations`) -> its JSON types
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "str | None": (str, type(None)),
    "int | None": (int, type(None)), "tuple[str, ...]": _LIST,
    "float": (float, int),  # seconds (WarmPool.warmup_timeout): JSON may write 120 or 120.0
    "bool": (bool,),
}
# Per kind: the class, and (field, JSON types, required) for each of its fields
_SHAPES: dict[ResourceKind, tuple[type, tuple[tuple[str, tuple[type, ...], bool], ...]]] = {
    kind: (cls, tuple((f.name, _FIELD_TYPES[str(f.type)],
                       f.default is MISSING and f.default_factory is MISSING)
                      for f in fields(cls)))
    for kind, cls in ((ResourceKind.WARM_POOL, WarmPool), (ResourceKind.TENANT, Tenant),
                      (ResourceKind.QUOTA, Quota))
}


def _expect(value: Any, types: type | tuple[type, ...], what: str) -> Any:
    """`value` when its type is one of `types` exactly (JSON's types: never a bool for an
    int), else ValueError naming what was expected."""
    wanted = types if isinstance(types, tuple) else (types,)
    if type(value) in wanted:
        return value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in wanted)
    raise ValueError(f"{what} must be {names}, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do to make the live state match the desired state.

    `applyable` is False when the plan has errors (capacity, safety). The
    fingerprint hashes the desired state and the observed live revision, so a
    plan file is refused once the live state has moved on."""

    runtime: str
    fingerprint: str
    actions: tuple[Action, ...] = ()
    errors: tuple[Diagnostic, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()
    source_path: str = ""
    source_commit: str | None = None
    live_revision: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)  # e.g. allowMassDelete
    # display only (the review view: plan.usage.plan_capacity); never checked on apply
    capacity: Mapping[str, Any] = field(default_factory=dict)

    @property
    def applyable(self) -> bool:
        return not self.errors

    @property
    def empty(self) -> bool:
        return not self.actions

    @property
    def summary(self) -> dict[str, int]:
        counts = {str(op): 0 for op in Op}
        for action in self.actions:
            counts[str(action.op)] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "formatVersion": FORMAT_VERSION,
            "source": {"path": self.source_path, "commit": self.source_commit},
            "runtime": self.runtime,
            "fingerprint": self.fingerprint,
            "liveRevision": self.live_revision,
            "applyable": self.applyable,
            "options": dict(self.options),
            "summary": self.summary,
            "actions": [action.to_json() for action in self.actions],
            "errors": [d.to_json() for d in self.errors],
            "warnings": [d.to_json() for d in self.warnings],
            **({"capacity": dict(self.capacity)} if self.capacity else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """A plan from its JSON form; ValueError (naming the field) for a wrong shape."""
        _expect(data, dict, "plan")
        if data.get("formatVersion") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported plan formatVersion {data.get('formatVersion')!r}, "
                f"expected {FORMAT_VERSION}"
            )
        source = _expect(data.get("source") or {}, dict, "source")
        actions = []
        for index, item in enumerate(_expect(data.get("actions", []), list, "actions")):
            try:
                actions.append(Action.from_json(item))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"actions[{index}]: {exc}") from None
        return cls(
            runtime=_expect(data.get("runtime"), str, "runtime"),
            fingerprint=_expect(data.get("fingerprint"), str, "fingerprint"),
            actions=tuple(actions),
            errors=tuple(_diagnostic_from_json(d)
                         for d in _expect(data.get("errors", []), list, "errors")),
            warnings=tuple(_diagnostic_from_json(d)
                           for d in _expect(data.get("warnings", []), list, "warnings")),
            source_path=_expect(source.get("path", ""), str, "source.path"),
            source_commit=_expect(source.get("commit"), (str, type(None)), "source.commit"),
            live_revision=_expect(data.get("liveRevision", ""), str, "liveRevision"),
            options=dict(_expect(data.get("options") or {}, dict, "options")),
            capacity=dict(_expect(data.get("capacity") or {}, dict, "capacity")),
        )


def _diagnostic_from_json(data: Mapping[str, Any]) -> Diagnostic:
    _expect(data, dict, "diagnostic")
    return Diagnostic(
        message=_expect(data.get("message"), str, "diagnostic message"),
        file=_expect(data.get("file") or "", str, "diagnostic file"),
        line=_expect(data.get("line") or 0, int, "diagnostic line"),
        col=_expect(data.get("col") or 0, int, "diagnostic col"),
        path=_expect(data.get("path") or "", str, "diagnostic path"),
        severity=Severity(data.get("severity", "error")),
    )
