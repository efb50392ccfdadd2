"""One config repo per bad input: the base repo broken in exactly one way.

Shared by the in-process rule tests and the CLI end-to-end test. Each case
names the file and the line the diagnostic must point at, and words the
message must contain.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config.conftest import BASE, C1, line_of

Files = dict[str, str | bytes]

RES = "reservations/reservations.yaml"
HUGE_BYTES = 17 * 1024 * 1024  # the huge-file case is made sparse to this size
ALG = "algorithms/algorithms.yaml"


@dataclass(frozen=True)
class Case:
    id: str
    file: str
    needle: str | None  # the line holding this text is where the error must point
    message: str
    change: Callable[[Files], None]
    nth: int = 1
    line: int | None = None  # explicit line when there is no needle

    def files(self) -> Files:
        files: Files = dict(BASE)
        self.change(files)
        return files

    def expected_line(self) -> int:
        if self.line is not None:
            return self.line
        text = self.files()[self.file]
        assert isinstance(text, str) and self.needle is not None
        return line_of(text, self.needle, self.nth)


def edit(file: str, old: str, new: str, count: int = 1) -> Callable[[Files], None]:
    def change(files: Files) -> None:
        text = files[file]
        assert isinstance(text, str) and old in text, (file, old)
        files[file] = text.replace(old, new, count)
    return change


def add(file: str, content: str | bytes) -> Callable[[Files], None]:
    def change(files: Files) -> None:
        files[file] = content
    return change


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)
NOT_UTF8 = (b"apiVersion: reconciler/v1\nkind: Account\n"
            b"metadata: {name: caf\xe9}\nspec: {type: user}\n")
# libyaml's C composer recursed past the C stack on these (SIGSEGV, no diagnostic)
DEEP_HEAD = ("apiVersion: reconciler/v1\nkind: Account\nmetadata: {name: deep}\n"
             "spec:\n  type: user\n")
DEEP_FLOW = DEEP_HEAD + "  x: " + "[" * 1_000_000 + "]" * 1_000_000 + "\n"
DEEP_BLOCK = DEEP_HEAD + "  x:\n    " + "- " * 1_000_000 + "a\n"
DUP_RESERVATION = """---
apiVersion: reconciler/v1
kind: Reservation
metadata: {name: alice-sentiment}
spec: {caller: alice, algorithm: acme/sentiment, versionType: latest-public, replicas: 1}
"""

CASES = [
    Case("yaml-syntax", RES, "oops: }", "YAML syntax error",
         edit(RES, "replicas: 2", "replicas: [2\n  oops: }")),
    Case("duplicate-key", RES, "replicas: 3", "duplicate key 'replicas'",
         edit(RES, "replicas: 2", "replicas: 2\n  replicas: 3")),
    Case("unknown-field", RES, "replicsa", "unknown field (did you mean replicas?)",
         edit(RES, "replicas: 2", "replicsa: 2")),
    Case("wrong-type", RES, "replicas: two", "must be an integer, got 'two'",
         edit(RES, "replicas: 2", "replicas: two")),
    Case("bad-name", RES, "Alice_Sentiment", "must be lowercase",
         edit(RES, "name: alice-sentiment", "name: Alice_Sentiment")),
    Case("bad-semver", ALG, "version: '1.0'", "must be a semantic version like 1.2.0",
         edit(ALG, "version: 1.0.0", "version: '1.0'")),
    Case("bad-hash", ALG, "commit: 12345", "40 lowercase hex",
         edit(ALG, f"commit: {C1}", "commit: 12345abc")),
    Case("bad-digest", ALG, "md5:", "must be a digest like sha256:",
         edit(ALG, "digest: sha256:" + "a" * 64, "digest: md5:abc")),
    Case("dangling-reference", RES, "caller: nobody", "account 'nobody' does not exist",
         edit(RES, "caller: alice", "caller: nobody")),
    Case("duplicate-name", RES, "name: alice-sentiment", "duplicate Reservation 'alice-sentiment'",
         lambda f: f.__setitem__(RES, f[RES] + DUP_RESERVATION), nth=2),  # type: ignore[operator]
    Case("version-type-mismatch", RES, "algorithm: acme/sentiment", "needs OWNER/NAME/VERSION",
         edit(RES, "algorithm: acme/sentiment/1.0.0", "algorithm: acme/sentiment"), nth=2),
    Case("access-violation", RES, "algorithm: acme/sentiment/1.1.0", "may not reserve private",
         edit(RES, "algorithm: acme/sentiment/1.0.0", "algorithm: acme/sentiment/1.1.0")),
    Case("gpu-on-cpu", ALG, "gpu: 2", "must be 0 on a cpu algorithm",
         edit(ALG, "memory: 256Mi, gpu: 0}", "memory: 256Mi,\n               gpu: 2}")),
    Case("capacity-over-limit", "limits.yaml", "maxEngines: 1", "over its maxEngines 1",
         edit("limits.yaml", "maxEngines: 5", "maxEngines: 1")),
    Case("min-over-max", "limits.yaml", "minimumParallelCapacity: 5",
         "must be <= maximumParallelCapacity (4), got 5",
         edit("limits.yaml", "minimumParallelCapacity: 1", "minimumParallelCapacity: 5")),
    Case("alias-bomb", "bomb.yaml", None, "alias bomb", add("bomb.yaml", BOMB), line=5),
    Case("deep-flow-nesting", "deep.yaml", None, "nested deeper than 64 levels",
         add("deep.yaml", DEEP_FLOW), line=6),
    Case("deep-block-nesting", "deep.yaml", None, "nested deeper than 64 levels",
         add("deep.yaml", DEEP_BLOCK), line=7),
    Case("huge-integer", RES, "replicas: 9999", "a number of 5000 characters is too long",
         edit(RES, "replicas: 2", "replicas: " + "9" * 5000)),
    Case("not-utf8", "accounts/cafe.yaml", None, "not UTF-8",
         add("accounts/cafe.yaml", NOT_UTF8), line=3),
    Case("fifo", "pipe.yaml", None, "not a regular file (a FIFO or device is never read)",
         add("pipe.yaml", ""), line=1),
    Case("huge-file", "huge.yaml", None, "over the limit", add("huge.yaml", ""), line=1),
    Case("path-traversal", ALG, "data://acme/../etc/passwd", "'..' segments",
         edit(ALG, "data://acme/sentiment/m1.json", "data://acme/../etc/passwd")),
]



def make_repo(case: Case, write_repo: Callable[..., Path]) -> Path:
    """Write the case's repo; the huge file is made sparse so the test stays fast."""
    root = write_repo(case.files(), name=case.id)
    if case.id == "fifo":  # opening it for reading would wait for a writer forever
        (root / case.file).unlink()
        os.mkfifo(root / case.file)
    if case.id == "huge-file":
        with open(root / case.file, "r+b") as handle:
            handle.truncate(HUGE_BYTES)
    return root
