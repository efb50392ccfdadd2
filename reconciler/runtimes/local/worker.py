"""One warm replica: one OS process that loads a model once and serves calls.

Run as a script (`python .../worker.py ARGS`, how the local agent starts it),
as `python -m reconciler.runtimes.local.worker ARGS`, or as `reconciler worker`
(the engine container's command on Kubernetes), which takes its settings from
the environment (see `args_from_env`). It imports only the standard library:
run as a script it never imports the `reconciler` package (whose config stage
pulls in YAML and JSON Schema), so a replica is warm in well under a second.

It binds its address first (`--listen`, default 127.0.0.1 with a port the OS
chooses) and answers `GET /healthz` with 503 while it warms up, so a readiness
probe sees "not yet" rather than a refused connection. Warm-up, in order:
resolve data://OWNER/COLLECTION/FILE under the data root (refusing a path that
leaves it), verify the file's sha256 against the expected digest, import MODULE
from the code root, call its `load(path)` (default: the file's bytes). Only
then does `/healthz` answer 200 and `POST /invoke` serve, so it never serves
before it is warm. Any failure is reported with its reason and the process
exits 2 (on Kubernetes: the pod never becomes ready).

Reporting: with --db, into the replicas row (state, pid, port, digest);
without (a cold worker for one `invoke`, or an engine container), as one JSON
line on stdout.

Lifetime: until SIGTERM (the agent or the kubelet stops it). With
--exit-with-stdin (a cold worker for one `invoke`), also until its stdin pipe
reaches end of file: the process that started it for one call keeps that
pipe open, so when that parent dies, even by kill -9, the kernel closes the
pipe and the worker goes too instead of serving forever.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import signal
import socket
import sqlite3
import stat
import sys
import threading
import traceback
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WARMUP_FAILED = 2


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
        raise WarmupError(f"model file {path} (from {url}) does not exist")
    return path


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return f"sha256:{sha.hexdigest()}"


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
    sys.path.insert(0, str(Path(args.code_root).resolve()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise WarmupError(f"cannot import {module_name} from {args.code_root}: "
                          f"{type(exc).__name__}: {exc}") from exc
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
    """What the HTTP handler serves: nothing until warm_up has finished."""

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


def make_handler(replica: Replica) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/healthz":
                self._send(*replica.health())
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/invoke":
                self._send(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            if not replica.ready:
                self._send(*replica.health())
                return
            try:
                payload = json.loads(data or b"null")
            except ValueError as exc:
                self._send(400, {"error": f"input is not JSON: {exc}"})
                return
            try:
                output = replica.function(payload, replica.model)
                body = {"output": output}
                json.dumps(body)
            except Exception as exc:
                traceback.print_exc()
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
                return
            self._send(200, body)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # one line per call would flood the replica's log

    return Handler


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:8080) -> (host, port); ValueError when malformed."""
    host, sep, port = listen.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {listen!r} is not HOST:PORT")
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)


def log(message: str) -> None:
    """Log lines go to stderr (the replica's log file); stdout carries only reports."""
    print(f"{now()} {message}", file=sys.stderr, flush=True)


def own_start_time() -> int | None:
    """This process's start time in clock ticks (Linux /proc), its identity beyond the pid."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            stat = handle.read()
        return int(stat[stat.rfind(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def now() -> str:
    """reconciler.timestamps.now_rfc3339, copied: run as a script the worker imports only
    the standard library (test_worker checks that the two agree)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def watch_parent(stop: threading.Event) -> bool:
    """Set `stop` once stdin reaches end of file, if stdin is a pipe or socket (a parent
    holding its write end). Not for /dev/null or a terminal: nobody to outlive there."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return False

    def drain() -> None:
        try:
            while os.read(sys.stdin.fileno(), 4096):
                pass
        except OSError:
            pass
        log("stdin closed: the process that started this worker is gone; stopping")
        stop.set()

    threading.Thread(target=drain, name="parent-watch", daemon=True).start()
    return True


class Reporter:
    """Writes this replica's state where its supervisor reads it."""

    def __init__(self, db: str | None, replica: int | None) -> None:
        self.db, self.replica = db, replica

    def _update(self, sql: str, values: tuple[Any, ...]) -> None:
        conn = sqlite3.connect(self.db or "", timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            # A replica the agent is stopping must not turn itself back to ready.
            updated = conn.execute(f"{sql} AND state != 'stopping'",
                                   (*values, self.replica)).rowcount
        finally:
            conn.close()
        if updated == 0:  # the agent dropped or is stopping this replica: leave
            log(f"replica {self.replica} is no longer wanted by the agent; exiting")
            sys.exit(0)

    def warming(self) -> None:
        if self.db:
            self._update("UPDATE replicas SET state = 'warming', pid = ?, "
                         "proc_start = COALESCE(proc_start, ?) WHERE id = ?",
                         (os.getpid(), own_start_time()))

    def ready(self, port: int, digest: str) -> None:
        if self.db:
            self._update("UPDATE replicas SET state = 'ready', pid = ?, port = ?, "
                         "model_digest = ?, ready_at = ?, error = NULL WHERE id = ?",
                         (os.getpid(), port, digest, now()))
        else:
            print(json.dumps({"ready": True, "port": port, "modelDigest": digest}), flush=True)

    def failed(self, reason: str) -> None:
        if self.db:
            self._update("UPDATE replicas SET state = 'failed', error = ? WHERE id = ?",
                         (reason,))
        else:
            print(json.dumps({"ready": False, "error": reason}), flush=True)


# `reconciler worker` (the engine container) is configured by these variables
# (SPEC.md section 4): variable -> (option, default; None: required).
ENVIRONMENT = {
    "RECONCILER_ENTRYPOINT": ("--entrypoint", None),
    "RECONCILER_MODEL_PATH": ("--model", None),
    "RECONCILER_MODEL_DIGEST": ("--digest", None),
    "RECONCILER_POOL_ID": ("--pool", None),
    "RECONCILER_DATA_ROOT": ("--data-root", "/data"),
    "RECONCILER_CODE_ROOT": ("--code-root", "/code"),
    "RECONCILER_LISTEN": ("--listen", "0.0.0.0:8080"),
}


def args_from_env(environ: dict[str, str]) -> list[str]:
    """The worker's arguments from the RECONCILER_* variables; ValueError naming every
    required variable that is missing or empty."""
    missing = [name for name, (_, default) in ENVIRONMENT.items()
               if default is None and not environ.get(name)]
    if missing:
        raise ValueError(f"missing environment variable(s): {', '.join(missing)}")
    argv: list[str] = []
    for name, (option, default) in ENVIRONMENT.items():
        argv += [option, environ.get(name) or str(default)]
    parse_listen(argv[argv.index("--listen") + 1])
    return argv


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A warm replica of the local runtime.")
    parser.add_argument("--pool", required=True)
    parser.add_argument("--replica", type=int, default=None)
    parser.add_argument("--db", default=None, help="state.db to report into (else stdout)")
    parser.add_argument("--entrypoint", required=True)
    parser.add_argument("--code-root", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--model", required=True, help="data://OWNER/COLLECTION/FILE")
    parser.add_argument("--digest", required=True, help="sha256:<hex> expected")
    parser.add_argument("--listen", default="127.0.0.1:0",
                        help="HOST:PORT to serve on (port 0: the OS picks one)")
    parser.add_argument("--exit-with-stdin", action="store_true",
                        help="also stop when stdin reaches end of file (a cold worker)")
    args = parser.parse_args(argv)
    try:
        args.address = parse_listen(args.listen)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reporter = Reporter(args.db, args.replica)
    if args.exit_with_stdin:
        watch_parent(stop)
    replica = Replica()
    try:
        server = _Server(args.address, make_handler(replica))
    except OSError as exc:
        reason = f"cannot listen on {args.listen}: {exc.strerror or exc}"
        log(reason)
        reporter.failed(reason)
        return WARMUP_FAILED
    threading.Thread(target=server.serve_forever, args=(0.1,), name="serve", daemon=True).start()
    host, port = str(server.server_address[0]), int(server.server_address[1])
    try:
        reporter.warming()
        log(f"pool {args.pool} replica {args.replica}: warming up (health on {host}:{port})")
        try:
            replica.warmed(*warm_up(args))
        except WarmupError as exc:
            replica.error = str(exc)
            log(f"warm-up failed: {exc}")
            reporter.failed(str(exc))
            return WARMUP_FAILED
        if stop.is_set():  # the parent went away during warm-up: nobody to serve
            return 0
        reporter.ready(port, replica.digest or "")
        log(f"ready on {host}:{port} with {replica.digest}")
        stop.wait()
        log("stopping")
        return 0
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.pop(0)  # run as a script: our folder must not shadow the algorithm's modules
    sys.exit(main())
