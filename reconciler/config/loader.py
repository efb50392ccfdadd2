"""STUB (issue 2 replaces this): walk, parse, validate, build the model."""

from __future__ import annotations

from pathlib import Path

from reconciler.config.model import Config
from reconciler.errors import Diagnostic


def check_config(
    root: Path | str, *, cache_dir: Path | None = None, commit: str | None = None
) -> tuple[Config | None, list[Diagnostic]]:
    """Load and validate every document under `root`, then the cross-document rules.

    Returns (config, diagnostics). `config` is None when any diagnostic is an
    error; warnings may come with a config. Diagnostics name files relative to
    `root`. `cache_dir`: where parsed+validated documents are cached by content
    hash (None: no on-disk cache). `commit`: recorded in Config.commit.
    """
    raise NotImplementedError


def load_config(
    root: Path | str, *, cache_dir: Path | None = None, commit: str | None = None
) -> Config:
    """Like check_config, but raises ConfigError carrying every error diagnostic."""
    raise NotImplementedError
