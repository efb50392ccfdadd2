"""The example pull-request workflow posts a long plan as one comment per part.

`reconciler diff --format markdown` splits a plan into parts under GitHub's
65,536-character comment limit, each after the line that
`reconciler.cli.plan.PART_MARKER` makes; the workflow's github-script must
split on exactly that line. With node installed, the script itself runs
against an in-memory stand-in for GitHub's REST API (comments create, update,
delete), over two pushes: a long plan, then a short one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from reconciler.cli.plan import PART_MARKER, markdown_text
from reconciler.plan.render import MARKDOWN_LIMIT

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = REPO_ROOT / "config-examples" / ".github" / "workflows" / "plan.yml"
GITHUB_LIMIT = 65_536


def script() -> str:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["plan"]["steps"]
    [step] = [s for s in steps if str(s.get("uses", "")).startswith("actions/github-script")]
    return str(step["with"]["script"])


def split_regex() -> re.Pattern[str]:
    """The JavaScript regex literal the script splits plan.md on, as a Python pattern
    (it uses only syntax the two share)."""
    match = re.search(r"plan\.split\(/(.+?)/(\w*)\)", script())
    assert match, "the script splits plan.md with a regex literal"
    assert "m" in match[2], "the split is per line (the m flag)"
    return re.compile(match[1], re.MULTILINE)


def parts_of(count: int) -> list[str]:
    return [f"### part {n}\n\n<details><summary>x</summary>\n\n```diff\n+ a\n```\n\n</details>"
            for n in range(1, count + 1)]


def test_the_split_regex_matches_the_marker_line_reconciler_prints() -> None:
    pattern = split_regex()
    for number, total in ((1, 2), (2, 2), (10, 12)):
        line = PART_MARKER.format(number=number, total=total)
        assert pattern.fullmatch(line + "\n"), line
    printed = markdown_text(parts_of(3)) + "\n"  # as `print_plan` echoes it
    assert [p for p in pattern.split(printed) if p.strip()] == [p + "\n" for p in parts_of(3)]
    assert pattern.split(markdown_text(parts_of(1))) == parts_of(1)  # one part: no marker


def test_a_part_with_its_comment_marker_stays_under_githubs_limit() -> None:
    assert MARKDOWN_LIMIT + len("<!-- reconciler-plan part 999 -->\n") < GITHUB_LIMIT


HARNESS = """
const fs = require('fs');
const [scriptPath, statePath] = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(statePath, 'utf8'));
let nextId = Math.max(0, ...state.comments.map((c) => c.id)) + 1;
const calls = [];
const issues = {
  listComments: async () => state.comments.map((c) => ({ ...c })),
  createComment: async ({ issue_number, body }) => {
    calls.push(['create', issue_number]);
    state.comments.push({ id: nextId++, body });
  },
  updateComment: async ({ comment_id, body }) => {
    calls.push(['update', comment_id]);
    state.comments.find((c) => c.id === comment_id).body = body;
  },
  deleteComment: async ({ comment_id }) => {
    calls.push(['delete', comment_id]);
    state.comments = state.comments.filter((c) => c.id !== comment_id);
  },
};
const github = { rest: { issues }, paginate: async (method, args) => method(args) };
const context = { repo: { owner: 'acme', repo: 'config' }, issue: { number: 7 } };
const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
new AsyncFunction('require', 'github', 'context', fs.readFileSync(scriptPath, 'utf8'))(
  require, github, context,
).then(() => console.log(JSON.stringify({ comments: state.comments, calls })));
"""


def run_script(tmp_path: Path, plan_md: str, comments: list[dict[str, object]]
               ) -> tuple[list[dict[str, object]], list[list[object]]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    (tmp_path / "script.js").write_text(script())
    (tmp_path / "harness.js").write_text(HARNESS)
    (tmp_path / "state.json").write_text(json.dumps({"comments": comments}))
    (tmp_path / "plan.md").write_text(plan_md)
    done = subprocess.run([node, "harness.js", "script.js", "state.json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result["comments"], result["calls"]


def test_the_script_posts_one_comment_per_part_and_deletes_stale_ones(tmp_path: Path) -> None:
    other = {"id": 1, "body": "LGTM"}
    legacy = {"id": 2, "body": "<!-- reconciler-plan -->\nan old single-comment plan"}
    big = [p + "x" * 60_000 for p in parts_of(3)]
    comments, calls = run_script(tmp_path, markdown_text(big) + "\n", [other, legacy])
    ours = [c for c in comments if c["id"] != 1]
    assert [str(c["body"]).split("\n", 1)[0] for c in ours] == [
        f"<!-- reconciler-plan part {n} -->" for n in (1, 2, 3)]
    assert [str(c["body"]).split("\n", 1)[1] for c in ours] == [p + "\n" for p in big]
    assert all(len(str(c["body"])) < GITHUB_LIMIT for c in comments)
    assert ours[0]["id"] == 2 and ["update", 2] in calls  # the legacy comment became part 1
    assert other in comments

    comments, calls = run_script(tmp_path, parts_of(1)[0] + "\n", comments)
    assert comments == [other, {"id": 2, "body": f"<!-- reconciler-plan part 1 -->\n"
                                                 f"{parts_of(1)[0]}\n"}]
    assert sorted(c[0] for c in calls) == ["delete", "delete", "update"]

    _, calls = run_script(tmp_path, parts_of(1)[0] + "\n", comments)
    assert calls == [], "an unchanged plan is not posted again"
