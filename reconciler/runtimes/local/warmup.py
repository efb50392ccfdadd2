"""A replica's warm-up and calls, standard library only (the worker loads it as a script).

Warm-up, in order: resolve data://OWNER/COLLECTION/FILE under the data root
(refusing a path that leaves it), verify the file's sha256 against the
expected digest, import MODULE from the code root (and only from there), call
its `load(path)` (default: the file's bytes). `Replica` answers /healthz and
/invoke: nothing but 503 until the warm-up has finished.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


class WarmupError(Exception):
    """Why this replica cannot serve (shown in the pool's error)."""


def resolve_data_path(url: str, data_root: Path) -> Path:
    """data://OWNER/COLLECTION/FILE -> DATA_ROOT/OWNER/COLLECTION/FILE, never outside it."""
    prefix = "data://"
    if not url.startswith(prefix):
        raise WarmupError(f"model path {url!r} is not a data:// path")
    parts = url[len(prefix):].split("/")
    if len(parts) < 3 or any(part in ("", ".", "..") for part in parts):
        raise WarmupError(f"model path {url!r} must be data://OWNER/COLLECTION/FILE "
                          "without empty, '.' or '..' segments")
    root = data_root.resolve()
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root):
        raise WarmupError(f"model path {url!r} leaves the data root {root}")
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        raise WarmupError(f"model file {path} (from {url}) {what}")
    return path


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return f"sha256:{sha.hexdigest()}"


def import_from_code_root(module_name: str, code_root: Path) -> Any:
    """Import MODULE (dotted: its top package) from the code root only; WarmupError when it is
    not there, is named like a standard-library module or one this process already has."""
    root = code_root.resolve()
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names:
        raise WarmupError(f"entrypoint module {top!r} is named like a Python standard-library "
                          f"module; rename {root}/{top} (a worker never loads it in place of "
                          f"the standard one, nor the standard one in its place)")
    if top in sys.modules:
        raise WarmupError(f"entrypoint module {top!r} is named like a module the worker "
                          f"itself uses; rename {root}/{top}")
    spec = importlib.machinery.PathFinder.find_spec(top, [str(root)])
    if spec is None or spec.loader is None:
        raise WarmupError(f"cannot import {module_name}: there is no {top}.py or {top}/ "
                          f"under the code root {root}")
    if root not in sys.path:
        sys.path.append(str(root))  # its own sibling imports; last, so it shadows nothing
    try:
        module = importlib.util.module_from_spec(spec)
        sys.modules[top] = module
        spec.loader.exec_module(module)
        if top != module_name:
            module = importlib.import_module(module_name)  # found through the package's path
    except Exception as exc:
        sys.modules.pop(top, None)
        raise WarmupError(f"cannot import {module_name} from {root}: "
                          f"{type(exc).__name__}: {exc}") from exc
    where = Path(getattr(module, "__file__", None) or root).resolve()
    if not where.is_relative_to(root):
        raise WarmupError(f"{module_name} was loaded from {where}, outside the code root {root}")
    return module


def warm_up(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(function, model, loaded digest); WarmupError on any failure."""
    path = resolve_data_path(args.model, Path(args.data_root))
    actual = file_digest(path)
    if actual != args.digest:
        raise WarmupError(f"model digest mismatch for {args.model}: the file has {actual}, "
                          f"the config expects {args.digest}; refusing to serve it")
    module_name, _, function_name = args.entrypoint.partition(":")
    if not module_name or not function_name:
        raise WarmupError(f"entrypoint {args.entrypoint!r} is not MODULE:FUNCTION")
    module = import_from_code_root(module_name, Path(args.code_root))
    function = getattr(module, function_name, None)
    if not callable(function):
        raise WarmupError(f"{module_name} has no function {function_name}")
    load = getattr(module, "load", None)
    try:
        model = load(str(path)) if callable(load) else path.read_bytes()
    except Exception as exc:
        raise WarmupError(f"{module_name}.load failed: {type(exc).__name__}: {exc}") from exc
    return function, model, actual


class Replica:
    """What the HTTP server serves: nothing until warm_up has finished."""

    def __init__(self) -> None:
        self.function: Any = None
        self.model: Any = None
        self.digest: str | None = None
        self.error: str | None = None

    @property
    def ready(self) -> bool:
        return self.digest is not None

    def warmed(self, function: Any, model: Any, digest: str) -> None:
        self.function, self.model = function, model
        self.digest = digest  # last: `ready` flips only once function and model are set

    def health(self) -> tuple[int, dict[str, Any]]:
        if self.ready:
            return 200, {"ready": True, "modelDigest": self.digest, "pid": os.getpid()}
        state = "failed" if self.error else "warming"
        return 503, {"ready": False, "state": state, "error": self.error, "pid": os.getpid()}

    def invoke(self, data: bytes) -> tuple[int, dict[str, Any]]:
        """One call: decode the JSON input, run the function, encode its output. A 503
        (not warm) promises the function did not run."""
        if not self.ready:
            return self.health()
        try:
            payload = json.loads(data or b"null")
        except RecursionError:
            return 400, {"error": "input is nested too deeply to decode"}
        except ValueError as exc:
            return 400, {"error": f"input is not JSON: {exc}"}
        try:
            output = self.function(payload, self.model)
            body = {"output": output}
            json.dumps(body)
        except Exception as exc:
            traceback.print_exc()
            return 500, {"error": f"{type(exc).__name__}: {exc}"}
        return 200, body
