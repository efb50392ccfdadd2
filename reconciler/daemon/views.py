"""What the dashboard shows, as plain data: overview, reservations, capacity, last plan.

A pass hands over what it planned (`record`: the Config, the Plan, the live
state; references only, so a pass pays nothing) and the probe hands over the
runtime's report (nodes, agent) between passes. Everything shown is computed
when a page or an /api/ endpoint is asked, at most once per plan for what
depends only on it (the reservation rows, the plan JSON and its review
view), and joined with the pools' current readiness on every request.

Each page is a `Page`: named text fields and tables of cells, so the server
renders it (templates in daemon/ui) and the page's script refreshes it from
/api/<page> with the same shapes. A cell is a string or a dict with `text`
and optionally `bar` ([used, limit]) and `cls` (a CSS class).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.config.model import Config
from reconciler.config.resolve import ResolveError, resolve_version
from reconciler.daemon.state import DaemonState
from reconciler.states import DesiredState, LiveState, Node, WarmPool, pool_id

Cell = str | dict[str, Any]
Row = dict[str, Any]  # {"cells": [Cell, ...], "data": {attribute: value}, "cls": str}


@dataclass
class Page:
    fields: dict[str, str] = field(default_factory=dict)
    tables: dict[str, list[Row]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"fields": self.fields, "tables": self.tables, **self.extra}


def row(cells: list[Cell], cls: str = "", **data: str) -> Row:
    return {"cells": cells, "cls": cls, "data": data}


def short(commit: str | None) -> str:
    return (commit or "")[:12] or "–"


def reservation_rows(config: Config, prefix: str = "") -> list[dict[str, Any]]:
    """One entry per reservation: who, what, how it resolves, where it is written."""
    resolved: dict[tuple[str, str], Any] = {}
    rows = []
    for name in sorted(config.reservations):
        res = config.reservations[name]
        algorithm = config.algorithms.get(res.algorithm_ref)
        version = None
        if algorithm is not None:
            how = (res.algorithm, str(res.version_type))
            if how not in resolved:
                try:
                    resolved[how] = resolve_version(res, algorithm)
                except ResolveError:
                    resolved[how] = None
            version = resolved[how]
        loc = res.doc.loc
        rows.append({
            "name": name, "account": res.caller, "algorithm": res.algorithm_ref,
            "versionType": str(res.version_type),
            "version": (version.version or version.commit[:12]) if version else "unresolved",
            "pool": pool_id(res.caller, algorithm.owner, algorithm.name, version.commit)
            if version and algorithm else "",
            "reserved": res.replicas,
            "processor": str(algorithm.processor) if algorithm else "",
            "gpu": algorithm.resources.gpu if algorithm else 0,
            "modelDigest": version.model.digest if version else "",
            "source": f"{prefix}{loc.file}:{loc.line}" if loc.line else f"{prefix}{loc.file}",
            "description": res.doc.metadata.description,
        })
    return rows


class Dashboard:
    """The dashboard's memory: the last plan, the runtime's report, events."""

    def __init__(self, state: DaemonState,
                 events: Callable[[int], list[dict[str, Any]]] | None = None) -> None:
        self.state = state
        self.events = events
        self._lock = threading.Lock()
        self._config: Config | None = None
        self._plan: Any = None
        self._live: LiveState | None = None
        self._desired: DesiredState | None = None
        self._commit: str | None = None
        self._report: dict[str, Any] = {}
        self._cached: dict[str, tuple[int, Any]] = {}

    # -- fed by the pass and the probe -----------------------------------------------

    def record(self, planned: Any) -> None:
        """A pass planned (pipeline.Planned): keep references, compute nothing. The plan
        shown is the last one that changed something or was refused: the empty plans of
        the passes after it ("no changes") replace nothing worth reading."""
        plan = planned.plan
        with self._lock:
            self._config, self._live = planned.config, planned.live
            self._desired = planned.desired
            if self._plan is None or plan.actions or plan.errors:
                self._plan, self._commit = plan, plan.source_commit

    def set_report(self, report: dict[str, Any]) -> None:
        with self._lock:
            self._report = report

    def _memo(self, key: str, source: object, make: Callable[[], Any]) -> Any:
        """`make()` once per `source` object (a Config, a Plan)."""
        cached = self._cached.get(key)
        if cached is not None and cached[0] == id(source):
            return cached[1]
        value = make()
        self._cached[key] = (id(source), value)
        return value

    # -- what the pages read ----------------------------------------------------------

    def snapshot(self) -> tuple[Config | None, Any, LiveState | None, dict[str, Any]]:
        with self._lock:
            return self._config, self._plan, self._live, self._report

    def reservations(self) -> list[dict[str, Any]]:
        config, _, _, _ = self.snapshot()
        if config is None:
            return []
        prefix = f"{self.state.path.strip('/')}/" if self.state.path.strip("/") else ""
        rows: list[dict[str, Any]] = self._memo(
            "reservations", config, lambda: reservation_rows(config, prefix))
        return rows

    def plan_json(self) -> dict[str, Any] | None:
        _, plan, _, _ = self.snapshot()
        if plan is None:
            return None
        data: dict[str, Any] = self._memo("plan", plan, plan.to_json)
        return data

    def review(self) -> Any:
        _, plan, _, _ = self.snapshot()
        data = self.plan_json()
        if data is None:
            return None
        from reconciler.plan.review import review

        return self._memo("review", plan, lambda: review(data))

    def nodes(self) -> list[Node]:
        _, _, _, report = self.snapshot()
        return [Node(name=str(n["name"]), cpu_millis=int(n.get("cpu_millis") or 0),
                     memory_bytes=int(n.get("memory_bytes") or 0), pods=int(n.get("pods") or 0),
                     gpu=int(n.get("gpu") or 0), emulated_gpu=bool(n.get("emulated_gpu")))
                for n in report.get("nodes") or ()]

    def desired_pools(self) -> list[WarmPool]:
        """The pools the last plan asks the runtime to keep (their shapes, for capacity)."""
        with self._lock:
            return list(self._desired.pools) if self._desired is not None else []

    def quotas(self) -> dict[str, tuple[int, int | None]]:
        with self._lock:
            desired = self._desired
        if desired is None:
            return {}
        return {q.account: (q.max_engines, q.max_gpus) for q in desired.quotas}

    def agent(self) -> dict[str, Any] | None:
        _, _, _, report = self.snapshot()
        agent = report.get("agent")
        return agent if isinstance(agent, dict) else None

    def recent_events(self, limit: int = 100) -> list[dict[str, Any]]:
        if self.events is None:
            return []
        try:
            return self.events(limit)
        except Exception as exc:  # the page must render even when the store does not answer
            return [{"id": 0, "time": "", "pool": "", "replica": None,
                     "message": f"cannot read the events: {exc}"}]
