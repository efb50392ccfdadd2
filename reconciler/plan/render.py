"""Renderers of a plan, computed from its JSON form (Plan.to_json()). Pure.

Like Terraform's views, every human form is rendered from the JSON form, so
the text, the pull-request comment and the plan file never disagree. rich is
imported only inside `render_text`, so commands that never print a plan
never pay for it; whether to colour is the caller's decision (the CLI reads
NO_COLOR and checks for a terminal), not this module's.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

MARKDOWN_LIMIT = 65_000  # GitHub rejects comments of 65,536 characters or more
OPS = ("create", "scale", "reload", "update", "delete")
SYMBOLS = {"create": "+", "scale": "~", "reload": "~", "update": "~", "delete": "-"}
STYLES = {"+": "green", "~": "yellow", "-": "red"}
NO_CHANGES = "No changes. The runtime matches the configuration."

Data = Mapping[str, Any]


def render_json(data: Data) -> str:
    """`--format json` and the plan file (SPEC.md section 5, formatVersion 1).

    One top-level key per line and one action per line: readable and diffable,
    and written by json's C encoder (an `indent=` dump goes through the pure
    Python encoder, about ten times slower on a 10,000-action plan).
    """
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n".join(f"    {json.dumps(item)}" for item in value)
            lines.append(f"  {json.dumps(key)}: [\n{items}\n  ]")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def summary_line(data: Data) -> str:
    counts = data.get("summary", {})
    if not data.get("actions"):
        return NO_CHANGES
    parts = [f"{counts.get(op, 0)} to {op}" for op in OPS]
    return "Plan: " + ", ".join(parts) + "."


def _value(value: Any) -> str:
    return "null" if value is None else str(value)


def action_header(action: Data) -> str:
    """`+ create WarmPool ID  OWNER/NAME VERSION  replicas N` and the like."""
    op = action["op"]
    head = f"{SYMBOLS[op]} {op} {action['kind']} {action['id']}"
    if action["kind"] != "WarmPool":
        return head
    label = action.get("version") or (action.get("commit") or "")[:12]
    replicas = action.get("replicas") or {}
    before, after = replicas.get("before"), replicas.get("after")
    if op == "create" or (op != "delete" and before == after):
        count = f"{after}"
    elif op == "delete":
        count = f"{before}"
    else:
        count = f"{before} -> {after}"
    return f"{head}  {action['algorithm']} {label}  replicas {count}"


def action_details(action: Data) -> list[str]:
    """Indented lines under the header: reason, field changes, wait/in-place notes."""
    lines = []
    if action.get("reason"):
        lines.append(f"    {action['reason']}")
    op = action["op"]
    for change in action.get("changes", ()):
        if op == "create" and action["kind"] == "WarmPool":
            break  # the header already shows the replicas
        if op == "create" and change["after"] is not None:
            lines.append(f"    {change['path']} = {_value(change['after'])}")
        elif change["path"] == "drift" and not change["after"]:
            # what differs from what the reconciler writes, in words (the desired side is "")
            lines.append(f"    drift: {_value(change['before'])}")
        elif op not in ("create", "delete"):
            lines.append(f"    {change['path']}: {_value(change['before'])} -> "
                         f"{_value(change['after'])}")
    if action.get("waitFor"):
        lines.append(f"    waits until pool {action['waitFor']} is ready (make-before-break)")
    if action.get("inPlace"):
        lines.append("    in place: replicas replaced one by one, keeping replicas-1 warm")
    return lines


def plain_lines(data: Data) -> list[tuple[str, str]]:
    """The text view as (style, line) pairs; style "" is unstyled."""
    out: list[tuple[str, str]] = []
    source = data.get("source") or {}
    where = source.get("path") or "."
    if source.get("commit"):
        where += f" @ {str(source['commit'])[:12]}"
    actions = data.get("actions") or []
    if actions:
        out.append(("bold", f"Plan for the {data.get('runtime')} runtime from {where}:"))
        out.append(("", ""))
    for action in actions:
        symbol = SYMBOLS[action["op"]]
        out.append((STYLES[symbol], action_header(action)))
        out.extend(("", line) for line in action_details(action))
    if actions:
        out.append(("", ""))
    for warning in data.get("warnings") or ():
        out.append(("yellow", f"Warning: {warning['message']}"))
    for error in data.get("errors") or ():
        out.append(("bold red", f"Error: {error['message']}"))
    out.append(("bold", summary_line(data)))
    if data.get("errors"):
        count = len(data["errors"])
        out.append(("bold red", f"The plan is refused ({count} error{'s' if count != 1 else ''})"
                                f": nothing will be applied."))
    return out


def render_text(data: Data, color: bool = False) -> str:
    """Terraform-like text: +/~/- lines, coloured with rich when `color` is True."""
    lines = plain_lines(data)
    if not color:
        return "\n".join(line for _, line in lines)
    import io

    from rich.console import Console
    from rich.text import Text

    console = Console(file=io.StringIO(), force_terminal=True, color_system="standard",
                      width=10_000, record=True, highlight=False, soft_wrap=True)
    for style, line in lines:
        console.print(Text(line, style=style or ""), soft_wrap=True)
    return console.export_text(styles=True).rstrip("\n")


def _summary_table(data: Data) -> list[str]:
    counts = data.get("summary", {})
    return ["| " + " | ".join(OPS) + " |",
            "|" + "---|" * len(OPS),
            "| " + " | ".join(str(counts.get(op, 0)) for op in OPS) + " |"]


def _md(text: str) -> str:
    """Text from the plan in markdown prose: no HTML, no code fence break-out."""
    return html.escape(text, quote=False).replace("`", "'")


def _fenced(line: str) -> str:
    return line.replace("```", "`\u200b``")


def _markdown_head(data: Data, view: Any, budget: int) -> str:
    commit = f" at `{str(view.commit)[:12]}`" if view.commit else ""
    mark = ":white_check_mark:" if view.applyable else ":x:"
    if view.applyable and not data.get("actions"):
        mark = ":heavy_minus_sign:"
    lines = [f"### reconciler plan: `{view.runtime}` runtime{commit}", "",
             f"**{mark} {_md(view.verdict)}**"]
    if data.get("actions"):
        lines += [""] + _summary_table(data)
    text = "\n".join(lines)
    for title, icon, items in (("Warnings", ":warning:", view.warnings),
                               ("Errors", ":x:", view.errors)):
        if not items:
            continue
        text = text.rstrip("\n") + f"\n\n**{title}**\n\n"
        for index, item in enumerate(items):
            note = f"- {icon} {_md(item)}\n"
            if len(text) + len(note) + 200 > budget:
                text += f"- ... and {len(items) - index} more (see the JSON plan)\n"
                break
            text += note
    return text.rstrip("\n")


def _details(body: str, title: str) -> str:
    return (f"<details><summary>{html.escape(title)}</summary>\n\n```diff\n{body}\n```\n\n"
            f"</details>")


def _account_blocks(view: Any, room: int) -> list[str]:
    """One collapsible block per account; an account too big for one part is cut
    into several blocks, each titled "(continued)" after the first."""
    blocks = []
    for section in view.accounts:
        lines = [_fenced("\n".join([header, *details])) for header, details in section.actions]
        title = section.title
        chunk: list[str] = []
        size = 0
        for line in lines:
            if len(line) > room - 400:
                line = line[: room - 420] + "\n    ..."
            if chunk and size + len(line) + 1 > room - 400:
                blocks.append(_details("\n".join(chunk), title))
                chunk, size, title = [], 0, f"{section.account} (continued)"
            chunk.append(line)
            size += len(line) + 1
        blocks.append(_details("\n".join(chunk), title))
    return blocks


def _processor_table(view: Any) -> str:
    if not view.processors:
        return ""
    rows = ["**Capacity by processor** (placed, of what the nodes allow)", "",
            "| processor | pods | GPUs |", "|---|---|---|"]
    rows += [f"| {cls} | {pods} | {gpus} |" for cls, pods, gpus in view.processors]
    return "\n".join(rows)


def _pack(blocks: Sequence[str], first_room: int, room: int) -> list[list[str]]:
    """Pack blocks greedily into parts: the first part has `first_room` characters
    left after the head, later ones `room`."""
    parts: list[list[str]] = []
    current: list[str] = []
    size, budget = 0, first_room
    for block in blocks:
        if (current or not parts and budget < room) and size + len(block) + 2 > budget:
            parts.append(current)
            current, size, budget = [], 0, room
        current.append(block)
        size += len(block) + 2
    parts.append(current)
    return parts


def render_markdown(data: Data, limit: int = MARKDOWN_LIMIT) -> list[str]:
    """A pull-request comment (the review view), in parts of fewer than `limit` characters.

    The first part holds the verdict, the summary, warnings and errors; then one
    collapsible section per account, packed so no part reaches the limit; the
    capacity per processor class closes the last part.
    """
    from reconciler.plan.review import review

    view = review(data)
    head = _markdown_head(data, view, limit // 2)
    table = _processor_table(view)
    heading = "**Accounts**"
    blocks = _account_blocks(view, limit - 300)
    packed = _pack(blocks, limit - len(head) - len(heading) - 300, limit - 300)
    parts = []
    for number, chunk in enumerate(packed):
        body = "\n\n".join(chunk)
        if number == 0:
            parts.append("\n\n".join(p for p in (head, heading if chunk else "", body) if p))
        else:
            parts.append(f"### reconciler plan (continued)\n\n{heading} (continued)\n\n{body}")
    if table:
        if len(parts[-1]) + len(table) + 2 < limit:
            parts[-1] += "\n\n" + table
        else:
            parts.append(f"### reconciler plan (continued)\n\n{table}")
    return parts
