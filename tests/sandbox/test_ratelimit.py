"""Token buckets, without HTTP."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.ratelimit import TokenBucket


def test_a_full_bucket_allows_its_capacity_then_refuses() -> None:
    bucket = TokenBucket.per_minute(60, now=1000.0)
    decisions = [bucket.take(1000.0) for _ in range(61)]
    assert all(decision.allowed for decision in decisions[:60])
    refused = decisions[60]
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after == 1
    assert refused.limit == 60


@pytest.mark.parametrize(
    ("per_minute", "taken", "elapsed", "remaining", "reset_at"),
    [
        (60, 1, 0.0, 59, 1),
        (60, 30, 0.0, 30, 30),
        (600, 600, 0.0, 0, 60),
        (600, 600, 0.1, 1, 60),  # 10 tokens/s: 0.1 s is one token back
        (60, 60, 30.0, 30, 60),
        (60, 10, 100.0, 60, 100),  # refills up to the capacity, never past it
    ],
)
def test_header_values(
    per_minute: int, taken: int, elapsed: float, remaining: int, reset_at: int
) -> None:
    bucket = TokenBucket.per_minute(per_minute, now=0.0)
    for _ in range(taken):
        bucket.take(0.0)
    decision = bucket.peek(elapsed)
    assert decision.limit == per_minute
    assert decision.remaining == remaining
    assert decision.reset_at == reset_at


def test_retry_after_is_when_a_token_is_back() -> None:
    bucket = TokenBucket.per_minute(6, now=0.0)  # one token per 10 s
    for _ in range(6):
        bucket.take(0.0)
    refused = bucket.take(3.0)
    assert not refused.allowed
    assert refused.retry_after == 7
    assert not bucket.take(9.9).allowed
    assert bucket.take(3.0 + 7).allowed


def test_resize_keeps_earned_tokens_up_to_the_new_capacity() -> None:
    bucket = TokenBucket.per_minute(600, now=0.0)
    bucket.resize(5.0, 5 / 60, now=0.0)
    assert bucket.peek(0.0).remaining == 5
    assert bucket.peek(0.0).limit == 5


@settings(deadline=None)
@given(
    per_minute=st.integers(1, 1200),
    gaps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=200),
)
def test_never_allows_more_than_capacity_plus_refill(per_minute: int, gaps: list[float]) -> None:
    bucket = TokenBucket.per_minute(per_minute, now=0.0)
    now = 0.0
    allowed = 0
    for gap in gaps:
        now += gap
        decision = bucket.take(now)
        allowed += decision.allowed
        assert 0 <= decision.remaining <= per_minute
        assert decision.reset_at >= math.floor(now)
        if not decision.allowed:
            assert decision.retry_after is not None
            assert decision.retry_after >= 1
    assert allowed <= per_minute + now * per_minute / 60 + 1e-6


@settings(deadline=None)
@given(per_minute=st.integers(1, 600))
def test_after_retry_after_a_token_is_there(per_minute: int) -> None:
    bucket = TokenBucket.per_minute(per_minute, now=0.0)
    while bucket.take(0.0).allowed:
        pass
    refused = bucket.take(0.0)
    assert refused.retry_after is not None
    assert bucket.take(float(refused.retry_after)).allowed
