"""Rate limiting: one token bucket per client, in memory, bounded in size.

Off unless ``FLOWENGINE_RATE_LIMIT`` is set, e.g. ``100/minute,burst=20`` or ``10/second``.
A bucket holds up to ``burst`` tokens and refills continuously at ``rate_per_s``; a request
takes one token or is refused with the time until the next token (the caller's Retry-After).

Everything runs on the event loop thread, so there are no locks. Buckets are kept in
least-recently-used order and the stalest are dropped past ``max_clients``: a bucket left alone
long enough is full again, so forgetting it loses nothing, and a flood of new client ids
(spoofed addresses, random keys) cannot grow memory without bound.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimit", "RateLimiter", "parse_rate_limit", "retry_after_seconds"]

_PERIODS = {"second": 1.0, "minute": 60.0}
_SPEC = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*(?:,\s*burst\s*=\s*(\d+)\s*)?", re.IGNORECASE)
# Refill is computed from float clock differences, which can land a hair under a whole token
# (0.9999999...); without this slack such a request would be refused and the effective rate
# would fall below the configured one.
_EPSILON = 1e-9
_EXAMPLE = "expected <requests>/<second|minute> with an optional ,burst=N, e.g. 100/minute,burst=20"


@dataclass(frozen=True)
class RateLimit:
    """``rate_per_s`` tokens are added per second, up to ``burst`` held at once."""

    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError(f"rate must be a positive number of requests, got {self.rate_per_s!r}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst!r}")


def parse_rate_limit(text: str) -> RateLimit:
    """Parse ``"<requests>/<second|minute>[,burst=N]"``.

    Without ``burst`` the bucket holds one period's worth of requests: ``100/minute`` allows
    100 at once, then one every 0.6 s.
    """
    match = _SPEC.fullmatch(text)
    if not match:
        raise ValueError(f"bad rate limit {text.strip()!r}: {_EXAMPLE}")
    count, period, burst = int(match[1]), match[2].lower(), match[3]
    if period not in _PERIODS:
        raise ValueError(f"bad rate limit period {period!r}: expected second or minute")
    if count < 1:
        raise ValueError(f"bad rate limit {text.strip()!r}: requests must be at least 1")
    if burst is not None and int(burst) < 1:
        raise ValueError(f"bad rate limit {text.strip()!r}: burst must be at least 1")
    return RateLimit(rate_per_s=count / _PERIODS[period], burst=int(burst) if burst else count)


def retry_after_seconds(wait_s: float) -> int:
    """A ``Retry-After`` value: ``wait_s`` rounded up to whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))


class RateLimiter:
    """Token buckets keyed by client id (API key fingerprint, JWT subject or remote address)."""

    def __init__(
        self,
        limit: RateLimit,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.limit = limit
        self._clock = clock
        self._max_clients = max_clients
        # client -> [tokens, last refill time]; a list so a hit updates in place.
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, client: str) -> float:
        """Take a token for ``client``: 0.0 when allowed, else the seconds until one is free."""
        now = self._clock()
        rate, burst = self.limit.rate_per_s, self.limit.burst
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = [float(burst), now]
            if len(self._buckets) > self._max_clients:
                self._evict()
        else:
            self._buckets.move_to_end(client)
            # max(0, ...): a clock that steps back must not drain the bucket.
            elapsed = max(0.0, now - bucket[1])
            bucket[0] = min(float(burst), bucket[0] + elapsed * rate)
            bucket[1] = now
        if bucket[0] >= 1.0 - _EPSILON:
            bucket[0] = max(0.0, bucket[0] - 1.0)
            return 0.0
        return (1.0 - bucket[0]) / rate

    def _evict(self) -> None:
        # The least recently used bucket has had the longest to refill, so it is the one most
        # likely full already (and dropping a full bucket changes nothing for its client).
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
