"""The pacer sends at the bucket's refill rate, re-syncs from headers and obeys Retry-After."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumer.dispatch.pacing import RatePacer


def test_waits_grow_by_one_refill_interval_per_send() -> None:
    pacer = RatePacer(limit_per_minute=60, tokens=0.0, updated_at=0.0)  # 1 token/s
    waits = [pacer.reserve(0.0)[1] for _ in range(3)]
    assert waits == [1.0, 2.0, 3.0]


def test_syncs_to_the_servers_remaining_minus_every_other_send_in_flight() -> None:
    pacer = RatePacer(limit_per_minute=6000, tokens=1.0, updated_at=0.0)
    pacer.reserve(0.0)  # an earlier send, still in flight
    first, _ = pacer.reserve(0.0)
    second, _ = pacer.reserve(0.0)
    pacer.observe(first, 0.0, limit=6000, remaining=500)
    # The server may not have counted the earlier send or `second` when it answered `first`:
    # answers come back out of order, so only the answered request is known counted.
    assert pacer.tokens == 498
    # An older answer arriving late does not overwrite a newer view.
    pacer.observe(second, 0.0, limit=6000, remaining=498)
    pacer_tokens = pacer.tokens
    pacer.observe(first, 0.0, limit=6000, remaining=9999)
    assert pacer.tokens == pacer_tokens


def test_a_429_holds_every_send_until_retry_after() -> None:
    pacer = RatePacer(limit_per_minute=6000, tokens=100.0, updated_at=0.0)
    seq, _ = pacer.reserve(0.0)
    pacer.throttle(seq, now=0.0, retry_after=2.5)
    assert pacer.reserve(1.0)[1] >= 1.5


def test_release_returns_the_token() -> None:
    pacer = RatePacer(limit_per_minute=60, tokens=0.0, updated_at=0.0)
    seq, _ = pacer.reserve(0.0)
    pacer.release(seq)
    assert pacer.tokens == 0.0


@given(
    limit=st.integers(min_value=60, max_value=60_000),
    sends=st.integers(min_value=1, max_value=2000),
)
def test_paced_sends_never_outrun_the_bucket(limit: int, sends: int) -> None:
    """Sending each request at its granted time never exceeds capacity + rate * elapsed."""
    pacer = RatePacer(limit_per_minute=limit, tokens=float(limit), updated_at=0.0)
    rate = limit / 60
    send_times = [pacer.reserve(0.0)[1] for _ in range(sends)]
    for index, at in enumerate(send_times):
        assert index + 1 <= limit + rate * at + 1e-6
