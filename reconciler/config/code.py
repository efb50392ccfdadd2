"""Algorithm code: where an entrypoint's module may come from, and its digest.

The loader's I/O about code (SPEC.md sections 2 and 7), kept apart from the
pure rules:

- An entrypoint `MODULE:FUNCTION` names algorithm code under the code root
  (`--code-root`, default `CONFIG_DIR/src`), never a module of the Python
  installation: a top-level name that is a standard-library, built-in or
  installed module (`os:system`, `shutil:rmtree`, `yaml:load`) is an error,
  whether or not the code root exists. A file under the code root with such
  a name (`src/signal.py`) is refused as well: it would shadow the module
  the worker itself imports, so the only safe answer is "rename it".
- Where the code root exists (the local runtime), the module must be a file
  under it: `src/NAME.py` or `src/NAME/__init__.py` (dotted names: every
  package on the way). Where it does not (Kubernetes: the code is in the
  image), only the rule above can be checked.
- The code an entrypoint loads has a digest, folded into its warm pools
  (WarmPool.code_digest) so that a commit changing only that code is a
  rolling reload: the module file, or every file of the top-level package
  (helper modules elsewhere under the code root are not tracked: put shared
  code in the package). A file that cannot be read is an error, never skipped.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Iterable
from importlib.machinery import PathFinder
from pathlib import Path

from reconciler.config.model import Algorithm
from reconciler.errors import Diagnostic

CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def entrypoint_module(entrypoint: str) -> str:
    """MODULE of MODULE:FUNCTION."""
    return entrypoint.partition(":")[0]


def check_code(algorithms: Iterable[Algorithm], code_root: Path
               ) -> tuple[list[Diagnostic], dict[str, str]]:
    """(diagnostics, {module: code digest}) for every algorithm's entrypoint.

    Digests are computed only where the code root exists (an empty dict otherwise)."""
    diags: list[Diagnostic] = []
    digests: dict[str, str] = {}
    verdicts: dict[str, str | None] = {}  # module -> problem (None: fine), once per module
    has_root = code_root.is_dir()
    real_root = os.path.realpath(code_root) if has_root else ""
    for algorithm in algorithms:
        module = entrypoint_module(algorithm.entrypoint)
        if module not in verdicts:
            problem = outside_problem(module, code_root if has_root else None)
            if problem is None and has_root:
                problem, digest = _module_digest(module, code_root, real_root)
                if digest is not None:
                    digests[module] = digest
            verdicts[module] = problem
        problem = verdicts[module]
        if problem is not None:
            loc = algorithm.doc.at("spec.entrypoint")
            diags.append(Diagnostic(problem, loc.file, loc.line, loc.col, "spec.entrypoint"))
    return diags, digests


def outside_problem(module: str, code_root: Path | None = None) -> str | None:
    """Why MODULE is not algorithm code: a module of the Python installation. A file of
    that name under the code root (`code_root`, when it exists) is named in the message."""
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        what, article = "standard-library", "a"
    elif _installed(top):
        what, article = "installed", "an"
    else:
        return None
    if code_root is not None:
        shown = _shown(code_root)
        for mine in (code_root / f"{top}.py", code_root / top):
            if mine.exists():
                return (f"{shown}/{mine.name} is named like the {what} module {top}: "
                        f"rename it (an entrypoint never names a module of the Python "
                        f"installation)")
    return (f"module {top!r} is {article} {what} module, not algorithm code: an entrypoint "
            f"must name a module under the code root (src/)")


def _installed(top: str) -> bool:
    """Whether `top` is importable from the installation (site-packages and the like),
    looked up without importing anything. The current directory does not count: it is
    on sys.path only because of how the CLI was started."""
    here = os.getcwd()
    paths = [p for p in sys.path if p and os.path.abspath(p) != here]
    for finder in sys.meta_path:  # the path finder, and e.g. editable installs' finders
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = PathFinder.find_spec(top, paths) if finder is PathFinder \
                else find(top, None)
        except (ImportError, ValueError, OSError, TypeError):
            continue
        if spec is not None:
            return True
    return False


def _module_digest(module: str, code_root: Path, real_root: str
                   ) -> tuple[str | None, str | None]:
    """(problem, digest) of MODULE under the code root."""
    parts = module.split(".")
    shown = _shown(code_root)
    directory = code_root
    loaded: Path | None = None  # what the top-level name loads: a package dir or a file
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        package = directory / part
        candidates = [package / "__init__.py"] + ([directory / f"{part}.py"] if last else [])
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            expected = " or ".join(f"{shown}/{c.relative_to(code_root).as_posix()}"
                                   for c in candidates)
            return (f"module {module!r} is not under the code root: expected {expected}",
                    None)
        if os.path.commonpath([real_root, os.path.realpath(found)]) != real_root:
            return (f"module {module!r}: {shown}/{found.relative_to(code_root).as_posix()} "
                    f"is a link to outside the code root", None)
        if loaded is None:
            loaded = package if found.name == "__init__.py" else found
        directory = package
    assert loaded is not None
    try:
        digest = (_tree_digest(loaded, code_root) if loaded.is_dir()
                  else _files_digest([loaded], code_root))
    except OSError as exc:
        where = Path(exc.filename).relative_to(code_root).as_posix() if exc.filename else ""
        return (f"module {module!r}: cannot read {shown}/{where}: {exc.strerror or exc}",
                None)
    return None, digest


def _shown(code_root: Path) -> str:
    return "src" if code_root.name == "src" else str(code_root)


def _tree_digest(top: Path, code_root: Path) -> str:
    """Every file of a package directory (hidden entries and __pycache__ left out)."""
    files: list[Path] = []

    def fail(exc: OSError) -> None:
        raise exc

    for directory, dirnames, filenames in os.walk(top, onerror=fail):
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and d != "__pycache__")
        files += [Path(directory, f) for f in sorted(filenames)
                  if not f.startswith(".") and not f.endswith((".pyc", ".pyo"))]
    return _files_digest(files, code_root)


def _files_digest(files: list[Path], code_root: Path) -> str:
    """sha256 over (relative path, content digest) of each file; a symlink counts by its
    target's path, so the digest never reads outside the code root."""
    whole = hashlib.sha256()
    for path in files:
        rel = path.relative_to(code_root).as_posix()
        if path.is_symlink():
            content = "link:" + os.readlink(path)
        else:
            content = _content_digest(path)
        whole.update(f"{rel}\0{content}\n".encode())
    return "sha256:" + whole.hexdigest()


def _content_digest(path: Path) -> str:
    """A regular file's sha256; a FIFO or device is named, never opened for reading."""
    fd = os.open(path, _OPEN_FLAGS)
    with open(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            return f"special:{stat.S_IFMT(mode):o}"
        one = hashlib.sha256()
        while chunk := handle.read(CHUNK):
            one.update(chunk)
    return one.hexdigest()
