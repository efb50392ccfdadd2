"""The review view of a plan: what a reviewer of a config change wants to know. Pure.

Computed from the plan's JSON form only (like every renderer): a one-line
verdict, warnings (mass delete, reduced capacity, version moves, the plan's
own), errors, then one section per account the plan touches (its figures
before -> after and its actions), then per processor class the pods and GPUs
placed against what the nodes allow (no node figures without a runtime, as
in `diff`). The pull-request markdown (render.render_markdown) and the
dashboard's "Last plan" page are two renderings of this one view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.plan.render import OPS, action_details, action_header

Data = Mapping[str, Any]
MAX_NAMED = 5  # pools named in one warning; the rest are counted


@dataclass
class AccountView:
    account: str
    figures: str  # "pools 2 → 3 · engines 3 → 4 of 10 · GPUs 0"
    actions: list[tuple[str, list[str]]] = field(default_factory=list)  # (header, details)

    @property
    def title(self) -> str:
        count = len(self.actions)
        return f"{self.account}: {self.figures} ({count} action{'s' if count != 1 else ''})"


@dataclass
class ReviewView:
    runtime: str
    commit: str | None
    applyable: bool
    verdict: str
    warnings: list[str]
    errors: list[str]
    accounts: list[AccountView]
    processors: list[tuple[str, str, str]]  # (processor, pods, GPUs)
    counts: dict[str, int]


def _arrow(pair: Mapping[str, Any] | None, limit: Mapping[str, Any] | None = None) -> str:
    """"3 → 4 of 10", "3 of 10" when unchanged, "3 → 4 of 8 → 10" when the limit moves."""
    pair = pair or {}
    before, after = pair.get("before"), pair.get("after")
    text = str(after) if before == after else f"{before} → {after}"
    if limit:
        lb, la = limit.get("before"), limit.get("after")
        if la is not None or lb is not None:
            shown_b = "no limit" if lb is None else lb
            shown_a = "no limit" if la is None else la
            text += f" of {shown_a}" if lb == la else f" of {shown_b} → {shown_a}"
    return text


def _figures(entry: Mapping[str, Any]) -> str:
    parts = [f"pools {_arrow(entry.get('pools'))}",
             f"engines {_arrow(entry.get('engines'), entry.get('maxEngines'))}"]
    gpus, max_gpus = entry.get("gpus") or {}, entry.get("maxGpus") or {}
    if gpus.get("before") or gpus.get("after") or max_gpus.get("before") is not None \
            or max_gpus.get("after") is not None:
        parts.append(f"GPUs {_arrow(gpus, max_gpus)}")
    return " · ".join(parts)


def verdict(data: Data) -> str:
    errors = data.get("errors") or []
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"Refused: {errors[0]['message']}{more}. Nothing will be applied."
    counts = data.get("summary") or {}
    done = [f"{counts[op]} to {op}" for op in OPS if counts.get(op)]
    if not done:
        return "No changes: the runtime matches the configuration."
    return "Applyable: " + ", ".join(done) + "."


def _named(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:MAX_NAMED])
    return shown + (f" and {len(ids) - MAX_NAMED} more" if len(ids) > MAX_NAMED else "")


def warnings(data: Data) -> list[str]:
    """Mass delete, reduced capacity, version moves, then the plan's own warnings."""
    actions = data.get("actions") or []
    pools = [a for a in actions if a.get("kind") == "WarmPool"]
    deletes = [a for a in pools if a["op"] == "delete" and not a.get("waitFor")]
    out = []
    if deletes:
        replicas = sum((a.get("replicas") or {}).get("before") or 0 for a in deletes)
        out.append(f"deletes {len(deletes)} warm pool{'s' if len(deletes) != 1 else ''} "
                   f"({replicas} replica{'s' if replicas != 1 else ''}): "
                   f"{_named([a['id'] for a in deletes])}")
    for entry in (data.get("capacity") or {}).get("accounts") or ():
        engines = entry.get("engines") or {}
        if (engines.get("after") or 0) < (engines.get("before") or 0):
            out.append(f"reduces the warm capacity of account {entry['account']}: "
                       f"{engines['before']} → {engines['after']} replicas")
    by_id = {a["id"]: a for a in pools}
    for action in pools:
        target = by_id.get(action.get("waitFor") or "")
        if action["op"] == "delete" and target is not None:
            out.append(f"moves {action['caller']}'s {action['algorithm']} from "
                       f"{_label(action)} to {_label(target)} (make-before-break)")
    out += [w["message"] for w in data.get("warnings") or ()]
    return out


def _label(action: Data) -> str:
    return str(action.get("version") or (action.get("commit") or "")[:12])


def _account_of(action: Data) -> str:
    return str(action.get("caller") or action.get("account") or "")


def review(data: Data) -> ReviewView:
    capacity = data.get("capacity") or {}
    figures = {e["account"]: _figures(e) for e in capacity.get("accounts") or ()}
    sections: dict[str, AccountView] = {}
    for action in data.get("actions") or ():
        account = _account_of(action)
        section = sections.get(account)
        if section is None:
            section = sections[account] = AccountView(account, figures.get(account, ""))
        section.actions.append((action_header(action), action_details(action)))
    processors = []
    for entry in capacity.get("processors") or ():
        room = entry.get("allocatable") or {}
        pods = _arrow(entry.get("pods"), {"before": room.get("pods"),
                                          "after": room.get("pods")} if room else None)
        gpus = entry.get("gpus") or {}
        has_gpus = gpus.get("before") or gpus.get("after") or room.get("gpus")
        gpu_text = _arrow(gpus, {"before": room.get("gpus"), "after": room.get("gpus")}
                          if room else None) if has_gpus else "–"
        processors.append((str(entry.get("processor")), pods, gpu_text))
    source = data.get("source") or {}
    return ReviewView(
        runtime=str(data.get("runtime")), commit=source.get("commit"),
        applyable=not data.get("errors"), verdict=verdict(data), warnings=warnings(data),
        errors=[e["message"] for e in data.get("errors") or ()],
        accounts=[sections[name] for name in sorted(sections)], processors=processors,
        counts={op: int((data.get("summary") or {}).get(op, 0)) for op in OPS})
