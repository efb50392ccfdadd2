from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from localkit import Site, kill_all, make_site, workers_of

from reconciler.runtimes.local.agent import Agent
from reconciler.runtimes.local.runtime import LocalRuntime


class Local:
    """A site, its runtime, and agents started by the test (stopped at teardown)."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.runtime = LocalRuntime(site.state, data_root=site.data, code_root=site.src,
                                    config_dir=site.root)
        self.agents: list[Agent] = []

    def agent(self, **kw: float) -> Agent:
        agent = Agent(self.site.state, poll_interval=kw.pop("poll_interval", 0.1),
                      grace=kw.pop("grace", 2.0))
        agent.start()
        self.agents.append(agent)
        return agent


@pytest.fixture(name="local")
def local_fixture(tmp_path: Path) -> Iterator[Local]:
    env = Local(make_site(tmp_path))
    yield env
    for agent in env.agents:
        agent.stop()
    env.runtime.close()
    left = workers_of(env.site.state)
    kill_all(left)
    assert not left, f"worker processes left running: {left}"
