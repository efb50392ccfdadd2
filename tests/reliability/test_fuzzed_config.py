"""Fuzzed YAML and mutated config-examples (a family that already holds).

Whatever the bytes of a config file, loading never raises (so the CLI never
prints a traceback), and every error names its file and line. Property
tests with hypothesis; the examples are few and the deadline off, to keep
the suite fast on 2 cores.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relkit import EXAMPLES, clean, cli

from reconciler.config.loader import check_config
from reconciler.errors import Severity

FILES = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.yaml"))
TOKENS = ["-1", "0", "null", "~", "[]", "{}", "x" * 70, "1e309", ".nan", "'", '"', "&a [*a]",
          "!!python/object/apply:os.system ['true']", "!!binary AAAA", "<<: *b", "? x",
          "2026-13-45", "data://acme/../x", "os:system", "{a: 1, a: 2}", "|", "@", "`",
          "\t", "%YAML 1.1", "---", "...", "- - -", "0x1F", "1_000", "yes", "\\x00"]
SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def repo() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="reconciler-fuzz-"))
    yield Path(shutil.copytree(EXAMPLES, root / "config"))
    shutil.rmtree(root)


def check_with(repo: Path, rel: str, content: bytes) -> None:
    """Load `repo` with `rel` replaced by `content`: no exception, errors located."""
    path = repo / rel
    original = path.read_bytes()
    path.write_bytes(content)
    try:
        config, diags = check_config(repo)
    finally:
        path.write_bytes(original)
    errors = [d for d in diags if d.severity is Severity.ERROR]
    assert (config is None) == bool(errors)
    for d in errors:
        assert d.file and d.line >= 1, f"an error without file and line: {d}"


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, bytes]:
    rel = draw(st.sampled_from(FILES))
    lines = (EXAMPLES / rel).read_bytes().splitlines(keepends=True)
    index = draw(st.integers(0, len(lines) - 1))
    kind = draw(st.sampled_from(["drop", "duplicate", "value", "key", "bytes", "truncate",
                                 "indent", "swap"]))
    line = lines[index]
    if kind == "drop":
        lines[index] = b""
    elif kind == "duplicate":
        lines.insert(index, line)
    elif kind == "value" and b":" in line:
        head = line.split(b":", 1)[0]
        lines[index] = head + b": " + draw(st.sampled_from(TOKENS)).encode() + b"\n"
    elif kind == "key":
        lines.insert(index, b"  " + draw(st.sampled_from(TOKENS)).encode() + b": 1\n")
    elif kind == "bytes":
        lines[index] = line[: len(line) // 2] + draw(st.binary(min_size=1, max_size=6)) + \
            line[len(line) // 2:]
    elif kind == "truncate":
        lines = lines[:index] + [line[: len(line) // 2]]
    elif kind == "indent":
        lines[index] = b" " * draw(st.integers(1, 5)) + line
    else:
        other = draw(st.integers(0, len(lines) - 1))
        lines[index], lines[other] = lines[other], lines[index]
    return rel, b"".join(lines)


@given(mutation=mutations())
@SETTINGS
def test_mutated_examples_never_raise_and_every_error_has_a_place(
        repo: Path, mutation: tuple[str, bytes]) -> None:
    check_with(repo, *mutation)


YAMLISH = st.text(alphabet=st.one_of(st.sampled_from(list("abc01:-[]{}&*!|>'\"#% \n\t?,.@`~\\")),
                                     st.characters()), max_size=300)


@given(text=YAMLISH)
@SETTINGS
def test_fuzzed_yaml_never_raises_and_every_error_has_a_place(repo: Path, text: str) -> None:
    check_with(repo, "reservations/acme.yaml", text.encode("utf-8", "surrogatepass"))


@pytest.mark.slow
def test_the_cli_says_where_without_a_traceback(tmp_path: Path) -> None:
    config = Path(shutil.copytree(EXAMPLES, tmp_path / "config"))
    target = config / "reservations" / "acme.yaml"
    target.write_bytes(target.read_bytes().replace(b"replicas: 2", b"replicas: [1, *x]"))
    done = cli("validate", str(config), "--format", "github")
    assert done.returncode == 1
    assert "::error file=" in clean(done) and ",line=" in done.stdout
