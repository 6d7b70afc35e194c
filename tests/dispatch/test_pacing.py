"""The pacer sends at the bucket's refill rate, re-syncs from headers and obeys Retry-After."""

from __future__ import annotations

import heapq
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.dispatch.pacing import RatePacer
from sandbox.ratelimit import TokenBucket


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


def test_an_unconfirmed_estimate_sends_one_probe_and_waits_for_its_answer() -> None:
    # Idle long enough for the refill to credit a full bucket that others may have spent.
    pacer = RatePacer(limit_per_minute=6000, tokens=1.0, updated_at=0.0, probe_after=1.0)
    assert pacer.ready_in(60.0) == 0.0
    probe, _ = pacer.reserve(60.0)
    assert pacer.ready_in(60.0) == 1.0  # the rest wait for the probe's answer
    pacer.observe(probe, 60.02, limit=6000, remaining=5)
    assert pacer.ready_in(60.02) == 0.0
    assert pacer.tokens == 5  # sized by the server's count, not the idle guess


def test_a_probe_that_gets_no_answer_lets_another_go() -> None:
    pacer = RatePacer(limit_per_minute=6000, tokens=100.0, updated_at=0.0, probe_after=1.0)
    probe, _ = pacer.reserve(10.0)
    assert pacer.ready_in(10.5) == 0.5
    assert pacer.ready_in(11.0) == 0.0  # never answered (a leak, a hung request)
    pacer.forget(probe)  # a transport error: still unconfirmed, the next send probes again
    second, _ = pacer.reserve(11.0)
    assert pacer.ready_in(11.0) == 1.0
    pacer.throttle(second, 11.1, retry_after=0.5)  # a 429 is an answer too
    assert pacer.ready_in(11.1) == 0.5


def test_while_answers_come_in_sends_never_wait_for_a_probe() -> None:
    pacer = RatePacer(limit_per_minute=6000, tokens=100.0, updated_at=0.0, probe_after=1.0)
    first, _ = pacer.reserve(0.0)
    pacer.observe(first, 0.02, limit=6000, remaining=100)
    for step in range(50):
        now = 0.02 + step * 0.5
        seq, _ = pacer.reserve(now)
        assert pacer.ready_in(now) == 0.0
        pacer.observe(seq, now + 0.02, limit=6000, remaining=100)


def _simulate(
    limit: int,
    start_tokens: int,
    concurrency: int,
    delays: list[tuple[float, float]],
    probe_after: float | None,
) -> int:
    """Send `len(delays)` requests through the pacer to a server bucket; the 429s met.

    Request i reaches the server `delays[i][0]` seconds after its token was granted (a
    loaded event loop, a connection being opened) and its answer comes back
    `delays[i][1]` seconds later, so requests reach the server and answers come back in
    any order."""
    server = TokenBucket(float(start_tokens), limit / 60.0, now=0.0)
    server.resize(float(limit), limit / 60.0, now=0.0)  # `start_tokens` left of `limit`
    pacer = RatePacer(
        limit_per_minute=limit,
        tokens=float(start_tokens),
        updated_at=0.0,
        probe_after=probe_after,
    )
    remaining: dict[int, int] = {}
    events: list[tuple[float, int, str, int]] = [(0.0, 0, "try", -1)]
    order = itertools.count(1)
    sent = refused = in_flight = 0
    while events:
        now, _, kind, index = heapq.heappop(events)
        if kind == "arrive":
            seq = index
            decision = server.take(now)
            refused += not decision.allowed
            heapq.heappush(
                events,
                (now + delays[seq][1], next(order), "answer" if decision.allowed else "429", seq),
            )
            remaining[seq] = decision.remaining
            continue
        if kind == "answer":
            in_flight -= 1
            pacer.observe(index, now, limit=limit, remaining=remaining.pop(index))
        elif kind == "429":
            in_flight -= 1
            remaining.pop(index)
            pacer.throttle(index, now, retry_after=1.0)
        while sent < len(delays) and in_flight < concurrency:
            wait = pacer.ready_in(now)
            if wait > 1e-9:
                heapq.heappush(events, (now + wait, next(order), "try", -1))
                break
            seq, _ = pacer.reserve(now)
            sent += 1
            in_flight += 1
            heapq.heappush(events, (now + delays[seq][0], next(order), "arrive", seq))
    return refused


@settings(max_examples=300, deadline=None)
@given(
    limit=st.sampled_from([60, 600, 6000, 12_000]),
    start_tokens=st.integers(min_value=0, max_value=20),
    concurrency=st.integers(min_value=1, max_value=50),
    delays=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=0.2), st.floats(min_value=0.0, max_value=0.2)),
        min_size=1,
        max_size=300,
    ),
    probe_after=st.sampled_from([None, 0.05, 1.0]),
)
def test_a_pacer_in_step_with_the_server_is_never_refused_whatever_the_order(
    limit: int,
    start_tokens: int,
    concurrency: int,
    delays: list[tuple[float, float]],
    probe_after: float | None,
) -> None:
    assert _simulate(limit, start_tokens, concurrency, delays, probe_after) == 0
