"""STUB (issue 3 replaces this): Config -> DesiredState."""

from __future__ import annotations

from reconciler.config.model import Config
from reconciler.states import DesiredState


def compile_config(config: Config) -> DesiredState:
    """Tenants (one per calling account), quotas (account CapacityLimits), warm pools."""
    raise NotImplementedError
