"""One warm replica: one OS process that loads a model once and serves calls.

Run as a script (`python .../worker.py ARGS`, how the agent starts it) or as
`python -m reconciler.runtimes.local.worker ARGS`. It imports only the standard
library: run as a script it never imports the `reconciler` package (whose
config stage pulls in YAML and JSON Schema), so a replica is warm in well
under a second.

Warm-up, in order: resolve data://OWNER/COLLECTION/FILE under the data root
(refusing a path that leaves it), verify the file's sha256 against the
expected digest, import MODULE from the code root, call its `load(path)`
(default: the file's bytes). Only then does it bind 127.0.0.1 (port chosen
by the OS) and report ready, so it never serves before it is warm. Any
failure is reported with its reason and the process exits 2.

Reporting: with --db, into the replicas row (state, pid, port, digest);
without (a cold worker for one `invoke`), as one JSON line on stdout.

Lifetime: until SIGTERM (the agent stops it). Without --db, also until its
stdin pipe reaches end of file: the process that started it for one call
keeps that pipe open, so when that parent dies, even by kill -9, the kernel
closes the pipe and the worker goes too instead of serving forever.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import signal
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


def make_handler(function: Any, model: Any, digest: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/healthz":
                self._send(200, {"ready": True, "modelDigest": digest, "pid": os.getpid()})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/invoke":
                self._send(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                payload = json.loads(self.rfile.read(length) or b"null")
            except ValueError as exc:
                self._send(400, {"error": f"input is not JSON: {exc}"})
                return
            try:
                output = function(payload, model)
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reporter = Reporter(args.db, args.replica)
    if not args.db:
        watch_parent(stop)
    reporter.warming()
    log(f"pool {args.pool} replica {args.replica}: warming up")
    try:
        function, model, digest = warm_up(args)
    except WarmupError as exc:
        log(f"warm-up failed: {exc}")
        reporter.failed(str(exc))
        return WARMUP_FAILED
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(function, model, digest))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.1,), name="serve", daemon=True).start()
    port = server.server_address[1]
    if stop.is_set():  # the parent went away during warm-up: nobody to serve
        server.shutdown()
        server.server_close()
        return 0
    reporter.ready(port, digest)
    log(f"ready on 127.0.0.1:{port} with {digest}")
    stop.wait()
    log("stopping")
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.pop(0)  # run as a script: our folder must not shadow the algorithm's modules
    sys.exit(main())
