"""The dashboard's four pages: their data (daemon.views) rendered by Jinja2 templates.

Templates are autoescaped (every string from the repository, a description
with `<script>` in it included, is shown as text), and carry no inline script
or style: daemon/ui/static/app.js refreshes the fields and tables of a page
from /api/<page> (the same `Page` shapes, written with textContent).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from reconciler.daemon.views import Dashboard, Page, row, short
from reconciler.plan.usage import node_usage
from reconciler.quantities import format_cpu, format_memory

NAV = (("/", "Overview"), ("/reservations", "Reservations"), ("/capacity", "Capacity"),
       ("/plan", "Last plan"))
MAX_ROWS = 1000  # rows of the reservations table sent at once (refreshed every 2 s)
_env: Environment | None = None


def env() -> Environment:
    global _env
    if _env is None:
        _env = Environment(loader=PackageLoader("reconciler.daemon", "ui/templates"),
                           autoescape=select_autoescape(default=True, default_for_string=True),
                           trim_blocks=True, lstrip_blocks=True)
    return _env


def first(query: dict[str, list[str]], name: str) -> str:
    return (query.get(name) or [""])[0].strip()


# -- overview ------------------------------------------------------------------------------


def overview(board: Dashboard) -> Page:
    data = board.state.to_json()
    failed = data.get("lastFailedCommit") or {}
    pools = data.get("pools") or {}
    history = data.get("history") or []
    drifted = [h for h in history if h.get("drift")]
    agent = board.agent()
    page = Page(fields={
        "repo": str(data.get("repo") or ""), "branch": str(data.get("branch") or "(directory)"),
        "path": str(data.get("path") or "/"), "mode": str(data.get("mode") or ""),
        "leader": "yes" if data.get("leader") else "no (another daemon holds the Lease)",
        "lastSeenCommit": short(data.get("lastSeenCommit")),
        "lastAppliedCommit": short(data.get("lastAppliedCommit")),
        "lastAppliedAt": str(data.get("lastAppliedAt") or "–"),
        "lastFailedCommit": short(failed.get("commit")) if failed else "none",
        "lastFailedReason": str(failed.get("reason") or ""),
        "lastFailedAt": str(failed.get("at") or ""),
        "lastResult": str(data.get("lastResult") or "pending"),
        "pools": f"{len(pools.get('items') or [])} pools, {pools.get('ready', 0)} of "
                 f"{pools.get('desired', 0)} replicas ready",
        "drift": (f"corrected in pass {drifted[0]['pass']} at {drifted[0]['startedAt']}"
                  if drifted else f"none in the last {len(history)} passes"),
        "agent": ("running" if agent.get("running") else "NOT RUNNING") if agent else
                 "none (the cluster's kubelets run the pods)",
    })
    page.extra["fullCommits"] = {"lastAppliedCommit": data.get("lastAppliedCommit") or "",
                                 "lastSeenCommit": data.get("lastSeenCommit") or ""}
    page.tables["history"] = [
        row([str(h["pass"]), h["trigger"], short(h.get("commit")),
             {"text": h["result"], "cls": f"result-{h['result']}"}, h["startedAt"],
             f"{h['durationSeconds']:.3f} s",
             ", ".join(f"{n} {op}" for op, n in (h.get("summary") or {}).items() if n) or "–",
             h.get("error") or ""]) for h in history]
    return page


# -- reservations --------------------------------------------------------------------------


def reservations(board: Dashboard, account: str = "", algorithm: str = "") -> Page:
    pools = {p["id"]: p for p in (board.state.to_json().get("pools") or {}).get("items") or ()}
    rows = []
    accounts, algorithms = set(), set()
    for entry in board.reservations():
        accounts.add(entry["account"])
        algorithms.add(entry["algorithm"])
        if (account and entry["account"] != account) or \
                (algorithm and entry["algorithm"] != algorithm):
            continue
        pool = pools.get(entry["pool"]) or {}
        ready, wanted = int(pool.get("ready") or 0), int(pool.get("replicas") or 0)
        state = "ok" if pool and ready >= wanted else "short"
        rows.append(row([
            entry["account"], entry["algorithm"],
            f"{entry['versionType']} → {entry['version']}", str(entry["reserved"]),
            {"text": f"{ready}/{wanted}" if pool else "no pool", "cls": state},
            entry["processor"] + (f" ×{entry['gpu']} GPU" if entry["gpu"] else ""),
            entry["modelDigest"].removeprefix("sha256:")[:12],
            {"text": entry["source"], "cls": "source"}, entry["description"]],
            cls=state, account=entry["account"], algorithm=entry["algorithm"],
            name=entry["name"]))
    count = f"{len(rows)} reservations"
    if len(rows) > MAX_ROWS:
        count = f"the first {MAX_ROWS} of {len(rows)} reservations: filter to see the others"
    page = Page(fields={"count": count}, tables={"reservations": rows[:MAX_ROWS]})
    page.extra["filters"] = {"accounts": sorted(accounts), "algorithms": sorted(algorithms),
                             "account": account, "algorithm": algorithm}
    return page


# -- capacity ------------------------------------------------------------------------------


def capacity(board: Dashboard) -> Page:
    desired = board.desired_pools()
    used: dict[str, list[int]] = {}
    for pool in desired:
        entry = used.setdefault(pool.caller, [0, 0])
        entry[0] += pool.replicas
        entry[1] += pool.replicas * pool.gpu
    quotas = board.quotas()
    accounts = []
    for name in sorted(set(used) | set(quotas)):
        engines, gpus = used.get(name, [0, 0])
        max_engines, max_gpus = quotas.get(name, (None, None))
        accounts.append(row([name, _bar(engines, max_engines), _bar(gpus, max_gpus)],
                            account=name))
    nodes = []
    for node in node_usage(desired, board.nodes()):
        total, placed = node["allocatable"], node["placed"]
        nodes.append(row([node["name"], node["processor"],
                          _bar(placed["cpu"], total["cpu"], format_cpu),
                          _bar(placed["memory"], total["memory"], format_memory),
                          _bar(placed["gpu"], total["gpu"]) if total["gpu"] else "–",
                          _bar(placed["pods"], total["pods"])]))
    return Page(fields={"nodes": f"{len(nodes)} nodes"},
                tables={"accounts": accounts, "nodes": nodes})


BAR = 120  # pixels of a full bar


def _bar(used: int, limit: int | None, fmt: Any = str) -> dict[str, Any]:
    """A cell with an SVG bar of `used` against `limit` (none: no bar, "no limit")."""
    if limit is None:
        return {"text": f"{fmt(used)} (no limit)"}
    width = BAR if used >= limit else round(BAR * used / limit) if limit else 0
    return {"text": f"{fmt(used)} of {fmt(limit)}", "bar": [used, limit], "w": width,
            "cls": "over" if used > limit else ""}


# -- last plan -----------------------------------------------------------------------------


def plan(board: Dashboard) -> Page:
    data = board.plan_json()
    page = Page(fields={"planId": ""})
    if data is not None:
        page.fields["planId"] = f"{data.get('fingerprint', '')}:{short(board.state.last_seen)}"
    page.tables["events"] = [
        row([e["time"], e.get("pool") or "", "" if e.get("replica") is None else
             str(e["replica"]), e["message"]]) for e in board.recent_events(100)]
    return page


# -- entry points (daemon.web) -------------------------------------------------------------


def build(board: Dashboard, name: str, query: dict[str, list[str]]) -> Page | None:
    if name in ("overview", "/"):
        return overview(board)
    if name in ("reservations", "/reservations"):
        return reservations(board, first(query, "account"), first(query, "algorithm"))
    if name in ("capacity", "/capacity"):
        return capacity(board)
    if name in ("plan", "/plan"):
        return plan(board)
    if name == "events":
        return Page(tables={"events": plan(board).tables["events"]})
    return None


def api(board: Dashboard, name: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
    page = build(board, name, query)
    return None if page is None else page.to_json()


def page(board: Dashboard, path: str, query: dict[str, list[str]]) -> str:
    built = build(board, path, query)
    assert built is not None
    template = {"/": "overview.html", "/reservations": "reservations.html",
                "/capacity": "capacity.html", "/plan": "plan.html"}[path]
    name = "overview" if path == "/" else path.strip("/")
    return env().get_template(template).render(
        nav=NAV, path=path, api=f"/api/{name}", page=built, state=board.state,
        review=board.review() if path == "/plan" else None)
