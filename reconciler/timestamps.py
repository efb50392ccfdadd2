"""The one timestamp format of stored records: RFC 3339, UTC, milliseconds, `Z`.

(The worker script keeps a copy, since run as a script it imports nothing of
reconciler; tests/runtime/test_worker.py checks that both agree.)
"""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339() -> str:
    """e.g. 2026-11-22T10:25:55.922Z"""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
