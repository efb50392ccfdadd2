"""The daemon's one-file-commit latency and its memory over many commits (`make bench`).

A real daemon process tracks a generated Git repository whose reservations are
already applied to the local store. Each round edits one reservation's replicas
in one file, commits, POSTs a signed push webhook and times until the daemon
logs that the pass applied that commit (the store has it). The daemon's RSS
is read from /proc after every commit.

The daemon runs with `--no-agent`: the bench measures the controller (100,000
pools would start as many workers).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from generate import commit_all

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class DaemonProcess:
    """`reconciler daemon` on a Git repo with JSON logs read line by line."""

    def __init__(self, repo: Path, state: Path, env: dict[str, str]) -> None:
        args = ["daemon", "--repo", str(repo), "--state", str(state), "--interval", "1h",
                "--resync", "1h", "--listen", "127.0.0.1:0", "--log-format", "json"]
        command = [sys.executable, "-m", "reconciler", *args, "--no-agent"]
        self.state = state
        self.lines: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.proc = subprocess.Popen(command, env={**env, "RECONCILER_WEBHOOK_SECRET": SECRET},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, cwd=ROOT)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.lines.put((time.perf_counter(), json.loads(line)))
            except ValueError:
                continue

    def wait_pass(self, commit: str, timeout: float) -> tuple[float, dict[str, Any]]:
        """The time the daemon logged the end of a pass of `commit`, and that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                at, line = self.lines.get(timeout=1.0)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError("the daemon exited") from None
                continue
            if re.match(r"pass (applied|unchanged|invalid|refused|failed|error)", line["msg"]) \
                    and (line.get("commit") or "").startswith(commit[:12]):
                return at, line
        raise TimeoutError(f"no pass of {commit[:12]} within {timeout:.0f}s")

    def url(self) -> str:
        info = self.state / "daemon.json"
        deadline = time.monotonic() + 120
        while not info.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the daemon did not start")
            time.sleep(0.05)
        return str(json.loads(info.read_text())["url"])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def webhook(url: str) -> None:
    import hashlib
    import hmac

    body = json.dumps({"ref": "refs/heads/main"}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(f"{url}/webhook", data=body, method="POST", headers={
        "X-Hub-Signature-256": signature, "X-GitHub-Event": "push",
        "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


def edit_one_reservation(repo: Path, round_: int) -> None:
    """Set the replicas of one reservation of one part file (a different one each round)."""
    parts = sorted((repo / "reservations").glob("part-*.yaml"))
    path = parts[round_ % len(parts)]
    text = path.read_text()
    matches = list(re.finditer(r"replicas: (\d+)", text))
    match = matches[(round_ // len(parts)) % len(matches)]
    new = str(int(match.group(1)) % 3 + 1)
    path.write_text(text[:match.start(1)] + new + text[match.end(1):])


def measure(repo: Path, state: Path, env: dict[str, str], commits: int) -> dict[str, Any]:
    """Latencies (s) of `commits` one-reservation commits, and the daemon's RSS (MB)."""
    daemon = DaemonProcess(repo, state, env)
    try:
        start = time.perf_counter()
        first_commit = commit_all(repo, "bench: start")
        url = daemon.url()
        _, first = daemon.wait_pass(first_commit, timeout=1800)
        first_pass = time.perf_counter() - start
        latencies, rss, results = [], [rss_mb(daemon.proc.pid)], []
        for round_ in range(commits):
            edit_one_reservation(repo, round_)
            commit = commit_all(repo, f"bench: round {round_}")
            sent = time.perf_counter()
            webhook(url)
            done, line = daemon.wait_pass(commit, timeout=600)
            latencies.append(done - sent)
            results.append(line["msg"])
            rss.append(rss_mb(daemon.proc.pid))
    finally:
        daemon.stop()
    ordered = sorted(latencies)
    return {
        "commits": commits, "first_pass_seconds": first_pass, "first_pass": first["msg"],
        "latency_p50": statistics.median(latencies),
        "latency_p95": ordered[max(0, round(0.95 * len(ordered)) - 1)],
        "latency_max": ordered[-1], "latencies": [round(x, 3) for x in latencies],
        "results": sorted(set(results)),
        "rss_start_mb": rss[0], "rss_after_first_mb": rss[1] if len(rss) > 1 else rss[0],
        "rss_end_mb": rss[-1], "rss_max_mb": max(rss),
    }


if __name__ == "__main__":  # python benchmarks/bench_daemon.py REPO STATE [COMMITS]
    print(json.dumps(measure(Path(sys.argv[1]), Path(sys.argv[2]), dict(os.environ),
                             int(sys.argv[3]) if len(sys.argv) > 3 else 5), indent=2))
