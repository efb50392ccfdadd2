"""Walk a config repository, parse and validate every document, build the model.

Stages: files (walk, size limit, UTF-8) -> documents (safe YAML with
positions) -> schema (per kind) -> model (frozen values) -> cross-document
rules -> capacity. Every stage reports into one list of diagnostics; nothing
stops at the first problem. The first three stages are per file and pure in
the file's bytes, so their result is cached by content hash.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.config import build, capacity, code, rules
from reconciler.config.cache import FileCache, FileResult, content_key
from reconciler.config.documents import pack_locs
from reconciler.config.model import Config
from reconciler.config.resolve import aggregate_pools
from reconciler.errors import ConfigError, Diagnostic, Severity

DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024
YAML_SUFFIXES = (".yaml", ".yml")
# no following a symlink at open time, and no blocking on a FIFO before it is refused
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(slots=True)
class FileDocs:
    """What one file contributes to a config: its built documents, the identities of
    its documents that failed their schema (rules.Ghosts), its diagnostics, and how many
    documents it has. Pure in the file's bytes: the daemon keeps one per file between
    passes and reads again only the files that changed."""

    items: list[build.Built] = field(default_factory=list)
    ghosts: list[tuple[str, str]] = field(default_factory=list)  # (kind, identity)
    diags: list[Diagnostic] = field(default_factory=list)
    documents: int = 0


def max_file_bytes() -> int:
    try:
        return int(os.environ.get("RECONCILER_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES))
    except ValueError:
        return DEFAULT_MAX_FILE_BYTES


def yaml_files(root: Path, errors: list[Diagnostic] | None = None) -> list[Path]:
    """Every *.yaml / *.yml below root, in a stable order, skipping hidden directories and
    hidden files (a config repository's .pre-commit-config.yaml is not config).

    A directory that cannot be read is never skipped silently: it goes into `errors`
    (named relative to root), or raises the OSError when no list is given. Its files
    are unknown, so a config with such an error must not be planned: its pools would
    look deleted."""
    found = []

    def unreadable(exc: OSError) -> None:
        if errors is None:
            raise exc
        where = Path(exc.filename or root)
        try:
            rel = where.relative_to(root).as_posix()
        except ValueError:
            rel = str(where)
        errors.append(Diagnostic(f"cannot read directory: {exc.strerror or exc}; its files "
                                 "are unknown, so nothing is planned from this config",
                                 file=rel if rel != "." else str(root)))

    for directory, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(directory, f) for f in sorted(filenames)
                  if f.endswith(YAML_SUFFIXES) and not f.startswith(".")]
    return found


def check_config(
    root: Path | str, *, cache_dir: Path | None = None, commit: str | None = None,
    code_root: Path | None = None, code_digests: bool = True,
) -> tuple[Config | None, list[Diagnostic]]:
    """Load and validate every document under `root`, then the cross-document rules.

    Returns (config, diagnostics). `config` is None when any diagnostic is an
    error; warnings may come with a config. Diagnostics name files relative to
    `root`. `cache_dir`: where parsed+validated documents are cached by content
    hash (None: no on-disk cache). `commit`: recorded in Config.commit.
    `code_root`: where entrypoint modules live (None: root/src); where it exists, each
    entrypoint must be a file under it, and with `code_digests` (the local runtime; not
    Kubernetes, whose code is the image) its digest goes into Config.code_digests.
    """
    root = Path(root)
    if not root.is_dir():
        return None, [Diagnostic(f"config directory {root} does not exist or is not a directory")]
    files = read_files(root, cache_dir)
    return check_files(root, files.values(), commit, code_root=code_root,
                       code_digests=code_digests)


def read_files(root: Path, cache_dir: Path | None) -> dict[str, FileDocs]:
    """`read_file` of every YAML file under root, by name relative to root, in walk order;
    what is not about one file (a directory that cannot be read, a cache entry set
    aside) under the name "" at the end."""
    cache = FileCache(cache_dir) if cache_dir is not None else None
    real_root = os.path.realpath(root)
    files = {}
    walk_errors: list[Diagnostic] = []
    for path in yaml_files(root, walk_errors):
        rel = path.relative_to(root).as_posix()
        files[rel] = read_file(path, rel, real_root, cache)
    problems = walk_errors + [Diagnostic(problem, severity=Severity.WARNING)
                              for problem in (cache.problems if cache is not None else [])]
    if problems:
        files[""] = FileDocs(diags=problems)
    return files


def check_files(root: Path, files: Iterable[FileDocs], commit: str | None, *,
                code_root: Path | None = None, code_digests: bool = True,
                ) -> tuple[Config | None, list[Diagnostic]]:
    """The cross-document stages over files read by `read_file`, in the order given
    (`code_root`, `code_digests`: see check_config)."""
    diags: list[Diagnostic] = []
    items: list[build.Built] = []
    ghosts = rules.Ghosts()
    documents = 0
    for docs in files:
        diags += docs.diags
        items += docs.items
        documents += docs.documents
        for kind, identity in docs.ghosts:
            (ghosts.accounts if kind == "Account" else ghosts.algorithms).add(identity)
    if documents == 0 and not any(d.severity is Severity.ERROR for d in diags):
        return None, diags + [Diagnostic(f"no YAML documents found under {root} "
                                         "(looked for *.yaml and *.yml, not hidden ones)")]
    config, found = rules.assemble(str(root.resolve()), items, commit)
    diags += found
    counts = aggregate_pools(config)
    object.__setattr__(config, "pool_counts", MappingProxyType(counts))  # compile_config reuses it
    pools = list(counts.values())
    pooled = {source for pool in pools for source in pool.sources}
    diags += rules.check(config, ghosts, pooled)
    diags += capacity.check(config, pools)
    found, digests = code.check_code(config.algorithms.values(),
                                     Path(code_root) if code_root else root / "src")
    diags += found
    if code_digests and digests:
        object.__setattr__(config, "code_digests", MappingProxyType(digests))
    diags.sort(key=Diagnostic.sort_key)
    if any(d.severity is Severity.ERROR for d in diags):
        return None, diags
    return config, diags


def load_config(
    root: Path | str, *, cache_dir: Path | None = None, commit: str | None = None,
    code_root: Path | None = None, code_digests: bool = True,
) -> Config:
    """Like check_config, but raises ConfigError carrying every error diagnostic."""
    config, diags = check_config(root, cache_dir=cache_dir, commit=commit,
                                 code_root=code_root, code_digests=code_digests)
    if config is None:
        raise ConfigError([d for d in diags if d.severity is Severity.ERROR])
    return config


def read_file(path: Path, rel: str, real_root: str, cache: FileCache | None) -> FileDocs:
    """Read, parse, validate and build one file (`rel`: its name in diagnostics).

    A cached entry whose documents do not build (it was edited or damaged in a
    way its checksum missed) is set aside and the file parsed again."""
    result, key = _file_result(path, real_root, cache)
    try:
        return _file_docs(rel, result)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        if cache is None or not key:
            raise  # our own parse gave it: a bug, not damage
        cache.discard(key, f"its documents do not build: {exc!r}")
        result, _ = _file_result(path, real_root, None)
        return _file_docs(rel, result)


def _file_docs(rel: str, result: FileResult) -> FileDocs:
    docs, raw_diags = result
    out = FileDocs(diags=[Diagnostic(m, rel, line, col, p, Severity(s))
                          for line, col, p, m, s in raw_diags], documents=len(docs))
    for data, line, col, locs, valid in docs:
        if valid:
            out.items.append(build.build(rel, data, line, col, locs))
        else:
            _remember(data, out.ghosts)
    return out


def _file_result(path: Path, real_root: str, cache: FileCache | None
                 ) -> tuple[FileResult, str]:
    """Parse and validate one file, or take the result from the cache; and the
    cache key ("" when the result did not come from the cache).

    A symlink is followed only when its target stays inside the config root:
    a link to /etc/passwd must not be read, let alone quoted in diagnostics
    that a pull request or the daemon's status shows."""
    limit = max_file_bytes()
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            target = os.path.realpath(path)
            if os.path.commonpath([real_root, target]) != real_root:
                return ([], [(1, 1, "", "symlink to outside the config root is not read",
                              "error")]), ""
            path = Path(target)
        # O_NOFOLLOW: the path (or the link's resolved target) must not turn into
        # a symlink between the check above and the open
        fd = os.open(path, _OPEN_FLAGS)
        with open(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return ([], [(1, 1, "", "not a regular file (a FIFO or device is never read); "
                                      "refused", "error")]), ""
            if info.st_size > limit:
                return ([], [(1, 1, "", f"file is {info.st_size} bytes, over the limit of "
                                        f"{limit} (RECONCILER_MAX_FILE_BYTES); refused",
                              "error")]), ""
            raw = handle.read(limit + 1)
    except OSError as exc:
        return ([], [(1, 1, "", f"cannot read: {exc.strerror or exc}", "error")]), ""
    if len(raw) > limit:
        return ([], [(1, 1, "", f"file is over the limit of {limit} bytes; refused",
                      "error")]), ""
    if cache is None:
        return _process(raw), ""
    key = content_key(raw)
    hit = cache.get(key)
    if hit is not None:
        return hit, key
    result = _process(raw)
    cache.put(key, result)
    return result, ""


def _process(raw: bytes) -> FileResult:
    # yaml and jsonschema are imported only when a file is not in the cache
    from reconciler.config import schema
    from reconciler.config.parse import decode, parse_text

    text, diags = decode(raw)
    if text is None:
        return [], diags
    docs, diags = parse_text(text)
    out = []
    shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
    for doc in docs:
        problems = schema.validate(doc)
        diags += problems
        out.append((doc.data, doc.line, doc.col, pack_locs(doc.locs, shapes), not problems))
    return out, diags


def _remember(data: Any, ghosts: list[tuple[str, str]]) -> None:
    """Note the identity of a document that failed its schema, so that references
    to it are not reported again as dangling."""
    if not isinstance(data, dict):
        return
    meta, spec = data.get("metadata"), data.get("spec")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str):
        return
    if data.get("kind") == "Account":
        ghosts.append(("Account", name))
    elif data.get("kind") == "Algorithm" and isinstance(spec, dict):
        ghosts.append(("Algorithm", f"{spec.get('owner')}/{name}"))
