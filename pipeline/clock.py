"""The time as the warehouse's records and the reports write it."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utc_now_text"]


def utc_now_text() -> str:
    """Now, in UTC, to the second, ISO 8601: `2026-12-07T17:42:01+00:00`."""
    return datetime.now(UTC).isoformat(timespec="seconds")
