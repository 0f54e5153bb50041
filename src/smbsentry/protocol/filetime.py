"""Windows FILETIME (100 ns ticks since 1601-01-01 UTC) to ISO 8601."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

EPOCH_DIFF = 116444736000000000  # 1601 -> 1970 in 100 ns ticks
_MAX = 2650467743999999999  # 9999-12-31: later values cannot be real clocks


def to_iso(ft: int | None) -> str | None:
    """ISO 8601 UTC with a Z, or None for 0 (not reported) and absurd values."""
    if not ft or ft < EPOCH_DIFF or ft > _MAX:
        return None
    dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=(ft - EPOCH_DIFF) // 10)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
