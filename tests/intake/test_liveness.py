"""Liveness: when /healthz fails and when a quiet consumer exits, on an injected clock."""

from __future__ import annotations

import pytest

from consumer.intake.errors import ConsumerStalled
from consumer.intake.liveness import Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def liveness(clock: Clock, *, stall_exit: bool = True) -> Liveness:
    return Liveness(stall_seconds=60, stall_exit=stall_exit, clock=clock)


def checks(live: Liveness) -> dict[str, bool]:
    return {name: check()[0] for name, check in live.health_checks().items()}


def test_idle_is_healthy_however_long() -> None:
    clock = Clock()
    live = liveness(clock)
    for _ in range(10):
        clock.now += 100
        live.observe(has_work=False, paused=False)
    assert checks(live) == {"intake_progress": True, "intake_fetch": True}


def test_work_without_progress_fails_health_but_does_not_exit() -> None:
    clock = Clock()
    live = liveness(clock)
    live.measured(fetchable=0, lag=5)  # all fetched, waiting on a dependency
    clock.now += 61
    live.observe(has_work=True, paused=False)
    assert checks(live) == {"intake_progress": False, "intake_fetch": True}
    live.progressed()
    assert checks(live)["intake_progress"]


def test_a_quiet_consumer_with_events_to_fetch_exits() -> None:
    clock = Clock()
    live = liveness(clock)
    live.measured(fetchable=3, lag=3)
    clock.now += 30
    live.observe(has_work=False, paused=False)
    clock.now += 31
    assert not checks(live)["intake_fetch"]
    with pytest.raises(ConsumerStalled):
        live.observe(has_work=False, paused=False)


def test_backpressure_is_not_a_stall() -> None:
    clock = Clock()
    live = liveness(clock)
    live.measured(fetchable=100, lag=108)
    for _ in range(5):
        clock.now += 30
        live.observe(has_work=True, paused=True)
        live.progressed()
    assert checks(live) == {"intake_progress": True, "intake_fetch": True}


def test_exit_can_be_turned_off() -> None:
    clock = Clock()
    live = liveness(clock, stall_exit=False)
    live.measured(fetchable=1, lag=1)
    clock.now += 500
    live.observe(has_work=False, paused=False)
    assert not checks(live)["intake_fetch"]
