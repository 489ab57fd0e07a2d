"""Unit tests for flowengine.lib.ratelimit: parsing, token-bucket refill on a fake clock,
Retry-After values, per-client isolation and bounded memory."""

from __future__ import annotations

import pytest

from flowengine.lib.ratelimit import RateLimit, RateLimiter, parse_rate_limit, retry_after_seconds

from support.clock import FakeClock


@pytest.mark.parametrize(("text", "rate", "burst"), [
    ("10/second", 10.0, 10),
    ("100/minute", 100 / 60, 100),
    ("100/minute,burst=20", 100 / 60, 20),
    (" 5 / Second , burst = 1 ", 5.0, 1),
    ("1/MINUTE", 1 / 60, 1),
])
def test_parse_rate_limit(text, rate, burst):
    limit = parse_rate_limit(text)
    assert limit.rate_per_s == pytest.approx(rate)
    assert limit.burst == burst


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "expected <requests>/<second|minute>"),
    ("100", "expected <requests>/<second|minute>"),
    ("100/hour", "period 'hour'"),
    ("0/second", "at least 1"),
    ("-1/second", "expected"),
    ("1.5/second", "expected"),
    ("10/second,burst=0", "burst must be at least 1"),
    ("10/second,burst=", "expected"),
    ("10/second,bust=3", "expected"),
    ("10/second;burst=3", "expected"),
])
def test_parse_rate_limit_errors(text, fragment):
    with pytest.raises(ValueError) as info:
        parse_rate_limit(text)
    assert fragment in str(info.value)


def test_rate_limit_validates():
    with pytest.raises(ValueError):
        RateLimit(0.0, 1)
    with pytest.raises(ValueError):
        RateLimit(1.0, 0)


def test_burst_then_refused_then_refilled():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate_per_s=2.0, burst=3), clock=clock)
    assert [limiter.check("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    # Empty bucket at 2 tokens/s: the next token is 0.5 s away.
    assert limiter.check("a") == pytest.approx(0.5)
    clock.now += 0.2
    assert limiter.check("a") == pytest.approx(0.3)
    clock.now += 0.3
    assert limiter.check("a") == 0.0
    assert limiter.check("a") == pytest.approx(0.5)


def test_refusals_do_not_consume_tokens():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate_per_s=1.0, burst=1), clock=clock)
    assert limiter.check("a") == 0.0
    for _ in range(5):
        assert limiter.check("a") == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.check("a") == 0.0


def test_refill_is_capped_at_burst():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate_per_s=1.0, burst=2), clock=clock)
    limiter.check("a")
    clock.now += 3600  # an hour idle still only buys `burst` requests
    assert [limiter.check("a") for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.check("a") > 0


def test_sustained_rate_matches_limit():
    clock = FakeClock()
    limiter = RateLimiter(parse_rate_limit("60/minute,burst=1"), clock=clock)
    allowed = 0
    for _ in range(600):  # 60 s of requests every 0.1 s
        if limiter.check("a") == 0.0:
            allowed += 1
        clock.now += 0.1
    assert 59 <= allowed <= 61


def test_retry_after_for_per_minute_limit():
    clock = FakeClock()
    limiter = RateLimiter(parse_rate_limit("2/minute,burst=2"), clock=clock)
    assert limiter.check("a") == limiter.check("a") == 0.0
    wait = limiter.check("a")
    assert wait == pytest.approx(30.0)
    assert retry_after_seconds(wait) == 30
    clock.now += 29.5
    assert retry_after_seconds(limiter.check("a")) == 1
    clock.now += 0.5
    assert limiter.check("a") == 0.0


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (29.9, 30), (0.0, 1)])
def test_retry_after_rounds_up_to_whole_seconds(wait, header):
    assert retry_after_seconds(wait) == header


def test_clients_are_isolated():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate_per_s=1.0, burst=1), clock=clock)
    assert limiter.check("alice") == 0.0
    assert limiter.check("alice") > 0
    assert limiter.check("bob") == 0.0
    assert limiter.check("bob") > 0
    assert limiter.check("alice") > 0


def test_clock_stepping_back_does_not_drain_or_fill():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate_per_s=1.0, burst=1), clock=clock)
    limiter.check("a")
    clock.now -= 100
    assert limiter.check("a") == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.check("a") == 0.0


def test_memory_is_bounded_and_least_recent_clients_evicted():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate_per_s=1.0, burst=1), clock=clock, max_clients=3)
    for client in ("a", "b", "c"):
        assert limiter.check(client) == 0.0
    assert limiter.check("a") > 0  # "a" is now the most recently used; "b" the stalest
    assert limiter.check("d") == 0.0
    assert len(limiter) == 3
    # "b" was forgotten, so it starts again with a full bucket; "a" was kept and is still empty.
    assert limiter.check("a") > 0
    assert limiter.check("b") == 0.0
    assert len(limiter) == 3
    for n in range(1000):
        limiter.check(f"flood-{n}")
    assert len(limiter) == 3


def test_max_clients_must_be_positive():
    with pytest.raises(ValueError):
        RateLimiter(RateLimit(1.0, 1), max_clients=0)
