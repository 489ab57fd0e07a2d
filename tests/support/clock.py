"""A clock the test moves by hand, for code that takes a ``clock`` callable (auth, rate limits)."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """Returns ``now`` when called; a test sets or advances ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
