"""Log lines that can repeat many times a second, summarised: at most one line per key per
interval, and the next line that gets through says how many were held back.

Event-trigger refusals and skipped cron ticks are the cases: a chain refused by a hundred
listening workflows, or a per-second cron whose run takes minutes, would otherwise write
thousands of identical warnings and drown everything else in the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["ThrottledLog"]

# Keys are forgotten once this many are held, after the quiet ones are dropped: the keys come
# from workflows, which come and go.
_MAX_KEYS = 1000


class ThrottledLog:
    """``warning(key, message, *args)``: like ``logger.warning``, at most once per ``interval``
    seconds for each key."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[Hashable, list[Any]] = {}  # key -> [when it last logged, lines held back since]

    def warning(self, key: Hashable, message: str, *args: Any) -> None:
        now = self.clock()
        entry = self._last.get(key)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return
        held_back = entry[1] if entry is not None else 0
        if held_back:
            message += " (and %d more like it in the last %g s)"
            args = (*args, held_back, self.interval)
        if entry is None and len(self._last) >= _MAX_KEYS:
            self._forget_quiet(now)
        self._last[key] = [now, 0]
        self.logger.warning(message, *args)

    def _forget_quiet(self, now: float) -> None:
        self._last = {key: entry for key, entry in self._last.items() if now - entry[0] < self.interval}
        if len(self._last) >= _MAX_KEYS:
            self._last.clear()
