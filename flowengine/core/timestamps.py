"""Timestamps as the wire carries them: RFC 3339 UTC with milliseconds and ``Z``.

Every event has one, so the common case is cheap: the text of the current second is formatted
once, and the milliseconds come from a table. An event's moment is kept as whole Unix
milliseconds (``epoch_millis``), which is what the compact history stores and what its text is
made from, so the text rebuilt from the history is the one listeners got.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["epoch_millis", "millis_timestamp", "now_millis", "utc_timestamp"]

_second_prefix: tuple[int, str] = (-1, "")  # the formatted whole second last asked for
_MILLIS = tuple(f"{millis:03d}Z" for millis in range(1000))


def epoch_millis(moment: float) -> int:
    """A ``time.time()`` float as whole Unix milliseconds, truncated."""
    second = int(moment) if moment >= 0 else int(moment) - (int(moment) != moment)
    # + 0.001: a float of today's time is only good to about 0.0003 ms, so x.123 may be stored
    # as x.12299990...; min() keeps x.9999999 in range.
    return second * 1000 + min(int((moment - second) * 1000 + 0.001), 999)


def now_millis() -> int:
    return time.time_ns() // 1_000_000


def millis_timestamp(millis: int) -> str:
    """Whole Unix milliseconds as ``2026-11-28T10:13:13.123Z``."""
    global _second_prefix
    second = millis // 1000  # not divmod(): a call and a tuple, for every timestamp
    prefix = _second_prefix
    if prefix[0] != second:
        prefix = _second_prefix = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S."))
    return prefix[1] + _MILLIS[millis - second * 1000]


def utc_timestamp(moment: datetime | float | None = None) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, e.g. ``2026-11-28T10:13:13.123Z``, of a
    datetime, a ``time.time()`` float, or None for now."""
    if moment is None:
        return millis_timestamp(now_millis())
    if isinstance(moment, datetime):
        if moment.utcoffset():
            moment = moment.astimezone(UTC)
        return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    return millis_timestamp(epoch_millis(moment))
