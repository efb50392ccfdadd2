"""Config sources for the daemon: a Git repository (clone + fetch) or a watched directory."""

from reconciler.sources.base import Snapshot, Source
from reconciler.sources.git import GitSource
from reconciler.sources.select import open_source
from reconciler.sources.watch import DirectorySource

__all__ = ["DirectorySource", "GitSource", "Snapshot", "Source", "open_source"]
