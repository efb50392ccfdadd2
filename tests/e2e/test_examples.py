"""The shipped examples are an end-to-end test: what `make run` does, checked.

The daemon serves a copy of config-examples/ on the local runtime until every
reserved replica is warm; each example algorithm then answers through
`reconciler invoke`, the access rules hold, and SIGTERM leaves no worker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from gitops_harness import REPO_ROOT, DaemonProcess, pools_ready  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLE_REPLICAS = 9  # config-examples/README.md: 8 reserved + 1 minimumParallelCapacity


def invoke(state: Path, caller: str, ref: str, payload: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "invoke", "--state", str(state), "--as", caller,
         ref, json.dumps(payload)],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )


def test_the_examples_are_served_end_to_end(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config-examples", config)
    state = tmp_path / "state"
    daemon = DaemonProcess(["--repo", str(config), "--interval", "1s"], state).started()
    try:
        daemon.wait_status(lambda s: pools_ready(s, EXAMPLE_REPLICAS), 60,
                           "every example replica warm")

        sentiment = invoke(state, "alice", "acme/sentiment", {"text": "I love this"})
        assert sentiment.returncode == 0, sentiment.stderr
        assert json.loads(sentiment.stdout)["label"] == "positive"
        assert sentiment.stderr.startswith("warm")

        embed = invoke(state, "dave", "globex/embed", "hello")
        assert embed.returncode == 0, embed.stderr
        assert len(json.loads(embed.stdout)["vector"]) == json.loads(embed.stdout)["dimensions"]

        private = invoke(state, "erin", "acme/sentiment/1.2.0", "great")
        assert private.returncode == 1
        assert "may not call private version 1.2.0" in private.stderr
        assert "Traceback" not in private.stderr
    finally:
        assert daemon.stop() == 0, daemon.output()[-3000:]
