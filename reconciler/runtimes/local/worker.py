"""One warm replica: one OS process that loads a model once and serves calls.

Run as a script (`python .../worker.py ARGS`, how the local agent starts it),
as `python -m reconciler.runtimes.local.worker ARGS`, or as `reconciler worker`
(the engine container's command on Kubernetes), which takes its settings from
the environment (see `args_from_env`). It imports only the standard library:
run as a script it never imports the `reconciler` package (whose config stage
pulls in YAML and JSON Schema), so a replica is warm in well under a second.

It binds its address first (`--listen`, default 127.0.0.1 with a port the OS
chooses) and answers `GET /healthz` with 503 while it warms up (warmup.py:
verify the model's digest, import the entrypoint from the code root and
nowhere else, call `load`), so a readiness probe sees "not yet" rather than a
refused connection. Only then does `/healthz` answer 200 and `POST /invoke`
serve. Any failure is reported with its reason and the process exits 2 (on
Kubernetes: the pod never becomes ready). The HTTP server is serve.Server
(TCP_NODELAY, keep-alive, timeouts, a connection limit).

Reporting: with --db, into the replicas row (state, pid, port, digest);
without (a cold worker for one `invoke`, or an engine container), as one JSON
line on --report-fd (a pipe its parent passes), else on the original stdout.
Either way the algorithm's own output never mixes with it: before any
algorithm code runs, file descriptor 1 and sys.stdout are pointed at stderr
(the replica's log), so a `print` in `load()` is a log line, not a report.

Lifetime: until SIGTERM (the agent or the kubelet stops it). With
--exit-with-stdin (a cold worker for one `invoke`), also until its stdin pipe
reaches end of file: the process that started it for one call keeps that
pipe open, so when that parent dies, even by kill -9, the kernel closes the
pipe and the worker goes too instead of serving forever.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sqlite3
import stat
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

if __package__:
    from reconciler.runtimes.local import serve, warmup
else:  # run as a script (how the agent starts it): its siblings sit next to this file
    def _sibling(name: str) -> Any:
        spec = importlib.util.spec_from_file_location(f"_reconciler_{name}",
                                                      Path(__file__).with_name(f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    serve, warmup = _sibling("serve"), _sibling("warmup")

WarmupError, Replica = warmup.WarmupError, warmup.Replica
resolve_data_path, warm_up = warmup.resolve_data_path, warmup.warm_up
WARMUP_FAILED = 2


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:8080) -> (host, port); ValueError when malformed."""
    host, sep, port = listen.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {listen!r} is not HOST:PORT")
    return host, int(port)


def log(message: str) -> None:
    """Log lines go to stderr (the replica's log file), as does the algorithm's output."""
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


def report_channel(fd: int | None) -> IO[str]:
    """Where reports go (`fd`, else a copy of the original stdout); then fd 1 and sys.stdout
    are pointed at stderr, so nothing the algorithm prints can pass for a report."""
    channel = os.fdopen(fd if fd is not None else os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


class Reporter:
    """Writes this replica's state where its supervisor reads it."""

    def __init__(self, db: str | None, replica: int | None, channel: IO[str]) -> None:
        self.db, self.replica, self.channel = db, replica, channel

    def _line(self, record: dict[str, Any]) -> None:
        try:
            self.channel.write(json.dumps(record) + "\n")
            self.channel.flush()
        except OSError:
            pass  # the parent stopped listening: it will not wait for this report

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
            self._line({"ready": True, "port": port, "modelDigest": digest})

    def failed(self, reason: str) -> None:
        if self.db:
            self._update("UPDATE replicas SET state = 'failed', error = ? WHERE id = ?",
                         (reason,))
        else:
            self._line({"ready": False, "error": reason})


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
    parser.add_argument("--report-fd", type=int, default=None,
                        help="write the JSON report line to this inherited file descriptor "
                             "(else to stdout, which the algorithm's output never reaches)")
    parser.add_argument("--max-connections", type=int, default=serve.MAX_CONNECTIONS,
                        help="connections served at once; more get a 503")
    parser.add_argument("--idle-timeout", type=float, default=serve.IDLE_TIMEOUT,
                        help="seconds a kept-alive connection may wait for its next request")
    parser.add_argument("--request-timeout", type=float, default=serve.REQUEST_TIMEOUT,
                        help="seconds from a request's first byte to its last")
    args = parser.parse_args(argv)
    try:
        args.address = parse_listen(args.listen)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reporter = Reporter(args.db, args.replica, report_channel(args.report_fd))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.exit_with_stdin:
        watch_parent(stop)
    replica = Replica()
    try:
        server = serve.Server(args.address, replica.health, replica.invoke,
                             max_connections=max(1, args.max_connections),
                             idle_timeout=max(0.01, args.idle_timeout),
                             request_timeout=max(0.01, args.request_timeout))
    except OSError as exc:
        reason = f"cannot listen on {args.listen}: {exc.strerror or exc}"
        log(reason)
        reporter.failed(reason)
        return WARMUP_FAILED
    threading.Thread(target=server.serve_forever, args=(0.1,), name="serve", daemon=True).start()
    host, port = str(server.server_address[0]), int(server.server_address[1])
    try:
        reporter.warming()
        which = f" replica {args.replica}" if args.replica is not None else ""  # none: a pod
        log(f"pool {args.pool}{which}: warming up (health on {host}:{port})")
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
