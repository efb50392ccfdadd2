"""Drift in the fields the reconciler sets, and other writers of them. Pure.

readback.pool_from reads the fields a WarmPool models (replicas, image,
resources, entrypoint, model, scheduling) back from a Deployment. Everything
else the reconciler sets (strategy, probes, command, env, labels, volumes,
the PodDisruptionBudget) is compared here: the manifest the reconciler would
write for the live pool must be contained in the live object. Extra fields
(the API server's defaults, another writer's additions in lists keyed by
name) are not drift: server-side apply would not remove them either.

`shared_writers` reads metadata.managedFields: a field manager other than
`reconciler` that owns a field the reconciler sets (an autoscaler on
replicas) makes the two fight; the plan warns about it. `foreign_template_fields`
finds what another manager added to the pod template (a container, hostNetwork):
apply cannot remove it, so the plan warns about that too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from reconciler.quantities import parse
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes.client import FIELD_MANAGER

SHOWN = 3  # differences named per object; the rest are counted
IN_PLACE = m.strategy(True)
# Paths compared elsewhere (pool_from reads them back as the `scheduling` field) or not
# comparable (the spec annotation holds the applied value, the live pool differs by drift).
SKIPPED = {("apiVersion",), ("kind",),  # list items carry neither
           ("spec", "template", "spec", "nodeSelector"),
           ("spec", "template", "spec", "tolerations"),
           ("metadata", "annotations", m.SPEC_ANNOTATION)}


_MISSING = object()


def contains(want: Any, have: Any) -> bool:
    """Does `have` contain `want` (as `differences` judges)? The fast yes of a no-op plan:
    plain type checks, and `==` on whole subtrees first."""
    kind = type(want)
    if kind is dict:
        if type(have) is not dict:
            return False
        for key, value in want.items():
            found = have.get(key, _MISSING)
            if found is _MISSING:
                return False
            if value is not found and value != found and not contains(value, found):
                return False
        return True
    if kind is list:
        if type(have) is not list:
            return False
        if want and all(type(w) is dict and "name" in w for w in want):
            by_name = {h.get("name"): h for h in have if type(h) is dict}
            return all(w["name"] in by_name and contains(w, by_name[w["name"]]) for w in want)
        return len(want) == len(have) and all(
            w == h or contains(w, h) for w, h in zip(want, have, strict=True))
    return want == have or same(want, have)


def comparable(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """`manifest` without what is not compared here (SKIPPED): the paths above are
    removed from shallow copies along them."""
    result = dict(manifest)
    for path in SKIPPED:
        node: Any = result
        for key in path[:-1]:
            child = node.get(key) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                break
            node[key] = node = dict(child)
        else:
            if isinstance(node, dict):
                node.pop(path[-1], None)
    return result


def differences(want: Any, have: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths where `have` does not contain `want`: a missing key, another value (quantities
    compared by amount), or a list element keyed by `name` that is missing or differs."""
    if path in SKIPPED:
        return
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            yield path
            return
        for key, value in want.items():
            if key not in have:
                if path + (key,) not in SKIPPED:
                    yield path + (key,)
            else:
                yield from differences(value, have[key], path + (key,))
    elif isinstance(want, list):
        if not isinstance(have, list):
            yield path
        elif want and all(isinstance(w, Mapping) and "name" in w for w in want):
            by_name = {h.get("name"): h for h in have if isinstance(h, Mapping)}
            for item in want:
                found = by_name.get(item["name"])
                where = path + (f"[{item['name']}]",)
                if found is None:
                    yield where
                else:
                    yield from differences(item, found, where)
        elif len(want) != len(have) or any(
                next(differences(w, h, ()), None) is not None for w, h in zip(want, have,
                                                                               strict=False)):
            yield path
    elif not same(want, have):
        yield path


def same(want: Any, have: Any) -> bool:
    if want == have:
        return True
    if isinstance(want, bool) or isinstance(have, bool):
        return False
    if isinstance(want, str | int) and isinstance(have, str | int):
        try:
            return parse(str(want)) == parse(str(have))
        except ValueError:
            return str(want) == str(have)
    return False


def lookup(obj: Any, path: Sequence[str]) -> Any:
    """The value at a `differences` path (None when absent)."""
    for part in path:
        if isinstance(obj, list) and part.startswith("["):
            name = part[1:-1]
            obj = next((i for i in obj if isinstance(i, Mapping) and i.get("name") == name), None)
        elif isinstance(obj, Mapping):
            obj = obj.get(part)
        else:
            return None
    return obj


def dotted(path: Sequence[str]) -> str:
    return ".".join(path).replace(".[", "[")


def describe(kind: str, want: Mapping[str, Any], have: Mapping[str, Any] | None) -> str:
    """"" when `have` contains `want`, else the differences in words (a few of them)."""
    if have is None:
        return f"{kind} missing"
    if contains(comparable(want), have):
        return ""
    found = list(differences(want, have))
    if not found:
        return ""
    shown = [f"{dotted(p)} is {_short(lookup(have, p))}, reconciler sets "
             f"{_short(lookup(want, p))}" for p in found[:SHOWN]]
    more = f" (and {len(found) - SHOWN} more)" if len(found) > SHOWN else ""
    return f"{kind} {'; '.join(shown)}{more}"


def _short(value: Any) -> str:
    text = "absent" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def pool_drift(deployment: Mapping[str, Any], want_deployment: Mapping[str, Any],
               pdb: Mapping[str, Any] | None, want_pdb: Mapping[str, Any]) -> str:
    """What was changed by hand in a pool's Deployment and PodDisruptionBudget ("" if
    nothing). The Deployment may have either rolling strategy the reconciler writes."""
    live_strategy = (deployment.get("spec") or {}).get("strategy")
    if contains(IN_PLACE, live_strategy):
        want_deployment = {**want_deployment, "spec": {**want_deployment["spec"],
                                                       "strategy": m.strategy(True)}}
    parts = [describe("Deployment", want_deployment, deployment),
             describe("PodDisruptionBudget", want_pdb, pdb)]
    return "; ".join(p for p in parts if p)


def template_drift(deployment: Mapping[str, Any], want_deployment: Mapping[str, Any]) -> bool:
    """Is any of the drift in the pod template? Only then does writing it back start a
    rollout (a new ReplicaSet, replicas replaced one by one)."""
    want = comparable(want_deployment)
    template = (want.get("spec") or {}).get("template")
    have = (deployment.get("spec") or {}).get("template")
    return not contains(template, have) and next(
        differences(template, have, ("spec", "template")), None) is not None


# --- other writers --------------------------------------------------------------------------

def shared_writers(obj: Mapping[str, Any],
                   manifest: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(manager, field path) for each field `manifest` sets that another field manager
    owns in `obj` (metadata.managedFields)."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or ():
        manager = entry.get("manager") or "(unnamed)"
        if manager == FIELD_MANAGER or not isinstance(entry.get("fieldsV1"), Mapping):
            continue
        for path in _overlap(entry["fieldsV1"], manifest, ()):
            yield manager, dotted(path)


TEMPLATE_SPEC = ("spec", "template", "spec")


def foreign_template_fields(obj: Mapping[str, Any],
                            manifest: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(manager, field path) for each field of the pod template's spec that another field
    manager owns in `obj` and `manifest` does not set: an added container, hostNetwork,
    a service account, a securityContext. Server-side apply never removes a field that
    another manager owns, so the reconciler's apply cannot take these back; the API
    server's defaults are owned by no manager and are not reported."""
    want: Any = manifest
    for key in TEMPLATE_SPEC:
        want = want.get(key) if isinstance(want, Mapping) else None
    for entry in (obj.get("metadata") or {}).get("managedFields") or ():
        manager = entry.get("manager") or "(unnamed)"
        tree: Any = entry.get("fieldsV1")
        if manager == FIELD_MANAGER:
            continue
        for key in TEMPLATE_SPEC:
            tree = tree.get(f"f:{key}") if isinstance(tree, Mapping) else None
        if isinstance(tree, Mapping) and isinstance(want, Mapping):
            for path in _extra(tree, want, TEMPLATE_SPEC):
                yield manager, dotted(path)


def _extra(tree: Mapping[str, Any], value: Any,
           path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The paths `tree` (fieldsV1) owns that `value` does not have, each at its top."""
    for key, sub in tree.items():
        if key.startswith("f:"):
            name = key[2:]
            if not isinstance(value, Mapping) or name not in value:
                yield path + (name,)
            elif isinstance(sub, Mapping) and sub and isinstance(value[name], Mapping | list):
                yield from _extra(sub, value[name], path + (name,))
        elif key.startswith("k:"):
            ident = _identity(key)
            if ident is None:
                continue
            label = ",".join(str(v) for v in ident.values())
            items = [item for item in value if _matches(item, ident)] \
                if isinstance(value, list) else []
            if not items:
                yield path + (f"[{label}]",)
            elif isinstance(sub, Mapping):
                yield from _extra(sub, items[0], path + (f"[{label}]",))
        elif key.startswith("v:"):
            try:
                item = json.loads(key[2:])
            except ValueError:
                continue
            if not isinstance(value, list) or item not in value:
                yield path + (f"[{key[2:]}]",)


def _identity(key: str) -> dict[str, Any] | None:
    """The fields naming a list item in a managedFields `k:{...}` key; None if garbled."""
    try:
        ident = json.loads(key[2:])
    except ValueError:
        return None
    return ident if isinstance(ident, dict) else None


def _matches(item: Any, ident: Mapping[str, Any]) -> bool:
    return isinstance(item, Mapping) and all(item.get(k) == v for k, v in ident.items())


def _overlap(tree: Mapping[str, Any], value: Any,
             path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for key, sub in tree.items():
        if key.startswith("f:") and isinstance(value, Mapping) and key[2:] in value:
            child = value[key[2:]]
            if sub and isinstance(child, Mapping | list) and isinstance(sub, Mapping):
                yield from _overlap(sub, child, path + (key[2:],))
            else:
                yield path + (key[2:],)
        elif key.startswith("k:") and isinstance(value, list) and isinstance(sub, Mapping):
            ident = _identity(key)
            if ident is None:
                continue
            for item in value:
                if _matches(item, ident):
                    label = ",".join(str(v) for v in ident.values())
                    yield from _overlap(sub, item, path + (f"[{label}]",))
