"""Post a markdown plan as pull-request comments, one per part, updated in place.

Run by action.yml (stdlib only, any Python 3.11):

    python post_comments.py PLAN.md

`reconciler diff --format markdown` prints a long plan in parts, each after a line
`<!-- reconciler: part N of M -->` (a short plan is one part without it). Every comment
this posts starts with that line (part 1 of 1 too), which is how the next run finds it:
part N is updated in place (only if its text changed), a missing part is created, and
our comments for parts the plan no longer has are deleted. Comments of the previous
workflow (`<!-- reconciler-plan part N -->`) are taken over the same way.

Ours means written by the token's user too: anyone may write a comment that starts with
the marker, and taking it over would show the plan under their name, in a comment they
can edit. That user is COMMENT_AUTHOR when set, else the login GET /user names (a
personal token), else github-actions[bot] (the workflow's GITHUB_TOKEN, for which
GitHub answers /user with 403; an app's token needs COMMENT_AUTHOR=APP-SLUG[bot]).

A 403 (the token may not write comments: a pull request from a fork gets a read-only
token) is a warning, not a failure: the plan is in the job summary all the same.

Environment: GITHUB_TOKEN, GITHUB_REPOSITORY (owner/name), PULL_REQUEST (its number),
GITHUB_API_URL (default https://api.github.com), COMMENT_AUTHOR.
RECONCILER_COMMENT_DRY_RUN=1 prints what would be posted instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

MARKER = "<!-- reconciler: part {number} of {total} -->"
SPLIT = re.compile(r"^<!-- reconciler: part \d+ of \d+ -->\r?\n", re.MULTILINE)
OURS = re.compile(r"\A<!-- reconciler(?:: part (\d+) of \d+|-plan(?: part (\d+))?) -->")
LINK_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
TIMEOUT = 30
DEFAULT_AUTHOR = "github-actions[bot]"


class Forbidden(Exception):
    """GitHub answered 403: the token may not do this."""


def parts_of(text: str) -> list[str]:
    """The parts of a plan, each with its marker line; at least one."""
    parts = [part for part in SPLIT.split(text) if part.strip()] or ["reconciler printed no plan\n"]
    return [MARKER.format(number=n, total=len(parts)) + "\n" + part
            for n, part in enumerate(parts, start=1)]


def part_number(body: str) -> int | None:
    match = OURS.match(body or "")
    if not match:
        return None
    return int(match[1] or match[2] or 1)


class GitHub:
    def __init__(self, api: str, token: str, repository: str, number: str) -> None:
        self.api, self.token = api.rstrip("/"), token
        self.issue = f"{self.api}/repos/{repository}/issues/{number}/comments"
        self.comments = f"{self.api}/repos/{repository}/issues/comments"

    def call(self, method: str, url: str, body: dict[str, Any] | None = None
             ) -> tuple[Any, str]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json",
            "User-Agent": "reconciler-action"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                raw = response.read()
                return (json.loads(raw) if raw else None), response.headers.get("Link", "")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            if exc.code == 403:
                raise Forbidden(f"{method} {url}: {exc.code} {exc.reason}: {detail}") from None
            raise SystemExit(f"error: {method} {url}: {exc.code} {exc.reason}: {detail}") from None
        except OSError as exc:
            raise SystemExit(f"error: {method} {url}: {exc}") from None

    def list(self) -> list[dict[str, Any]]:
        url: str | None = f"{self.issue}?per_page=100"
        found: list[dict[str, Any]] = []
        while url:
            page, link = self.call("GET", url)
            found += page
            match = LINK_NEXT.search(link)
            url = match[1] if match else None
        return found


def whoami(github: GitHub) -> str:
    """The login the token posts as (see the module's docstring)."""
    try:
        user, _ = github.call("GET", f"{github.api}/user")
    except Forbidden:
        return DEFAULT_AUTHOR
    return str((user or {}).get("login") or DEFAULT_AUTHOR)


def sync(github: GitHub, parts: list[str], author: str = DEFAULT_AUTHOR) -> list[str]:
    """Make our comments (`author`'s, with a marker) equal `parts`; what was done, one
    line per call."""
    previous: dict[int, dict[str, Any]] = {}
    stale = []
    for comment in github.list():
        number = part_number(comment.get("body") or "")
        if number is None or (comment.get("user") or {}).get("login") != author:
            continue
        if number <= len(parts) and number not in previous:
            previous[number] = comment
        else:
            stale.append(comment)  # a part this plan does not have, or a duplicate
    done = []
    for number, body in enumerate(parts, start=1):
        old = previous.get(number)
        if old is None:
            github.call("POST", github.issue, {"body": body})
            done.append(f"created part {number} of {len(parts)}")
        elif old.get("body") != body:
            github.call("PATCH", f"{github.comments}/{old['id']}", {"body": body})
            done.append(f"updated part {number} of {len(parts)} (comment {old['id']})")
    for comment in stale:
        github.call("DELETE", f"{github.comments}/{comment['id']}")
        done.append(f"deleted comment {comment['id']} (a part the plan no longer has)")
    return done


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: post_comments.py PLAN.md", file=sys.stderr)
        return 2
    parts = parts_of(Path(argv[1]).read_text(encoding="utf-8"))
    if os.environ.get("RECONCILER_COMMENT_DRY_RUN") == "1":
        for part in parts:
            print(part)
        return 0
    missing = [name for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "PULL_REQUEST")
               if not os.environ.get(name)]
    if missing:
        print(f"error: {', '.join(missing)} not set", file=sys.stderr)
        return 1
    github = GitHub(os.environ.get("GITHUB_API_URL") or "https://api.github.com",
                    os.environ["GITHUB_TOKEN"], os.environ["GITHUB_REPOSITORY"],
                    os.environ["PULL_REQUEST"])
    try:
        author = os.environ.get("COMMENT_AUTHOR") or whoami(github)
        done = sync(github, parts, author)
    except Forbidden as exc:
        print(f"::warning::cannot post the plan as comments, the token may not write them "
              f"(a pull request from a fork gets a read-only token; else give the job "
              f"`permissions: pull-requests: write`); the plan is in the job summary. {exc}")
        return 0
    for line in done or ["the plan comments are up to date"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
