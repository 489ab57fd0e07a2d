"""Execution ids: version 7 UUIDs (RFC 9562), time-ordered so the history's id index grows at
one end."""

from __future__ import annotations

import os
import time

__all__ = ["new_execution_id"]

_random_pool = b""
_random_used = 0
_last_millis = -1  # the Unix millisecond and random part of the last id made
_last_random = 0
_RANDOM_BITS = 74  # rand_a (12 bits) and rand_b (62 bits) of a version 7 UUID
_RANDOM_MASK = (1 << _RANDOM_BITS) - 1


def new_execution_id() -> str:
    """A version 7 UUID (RFC 9562) as text: 48 bits of Unix milliseconds, then 74 random bits.

    Ids sort by creation time. That is handy when reading the history, and it is what keeps the
    history's id index cheap: each new row goes at the index's end instead of onto a random page
    (random version 4 ids cost the SQLite writer noticeably more per execution). Within one
    millisecond, or when the clock steps back, the random part of the previous id grows by a
    random step (RFC 9562 section 6.2, method 2), so ids of one process never go backwards.
    The random bytes are read from the OS 4 KiB at a time: one getrandom() call per id cost
    more than the rest of a small execution's set-up."""
    global _random_pool, _random_used, _last_millis, _last_random
    if _random_used >= len(_random_pool):
        _random_pool, _random_used = os.urandom(4096), 0
    raw = int.from_bytes(_random_pool[_random_used : _random_used + 16], "big")
    _random_used += 16
    millis = time.time_ns() // 1_000_000
    if millis > _last_millis:
        random = raw & _RANDOM_MASK
    else:
        millis = _last_millis
        random = _last_random + 1 + (raw >> 96)  # a step of 1 to 2**32
        if random > _RANDOM_MASK:  # the part overflowed: borrow the next millisecond
            millis, random = millis + 1, random & _RANDOM_MASK
    _last_millis, _last_random = millis, random
    value = (millis << 80) | _VERSION_7 | ((random >> 62) << 64) | _VARIANT | (random & _RAND_B_MASK)
    hexa = f"{value:032x}"
    return f"{hexa[:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:]}"


_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62  # RFC 9562's variant
_RAND_B_MASK = (1 << 62) - 1
