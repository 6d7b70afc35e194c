"""The start-up budgets: settings first, then `GET /v1/me`, and defaults after a bounded
wait, so an API that cannot say never keeps the dispatcher from sending."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from consumer.dispatch.budgets import (
    DEFAULT_READ_PER_MINUTE,
    DEFAULT_WRITE_PER_MINUTE,
    Budgets,
    Learned,
    choose_budgets,
    learn_rate_limits,
)
from consumer.kirim.client import KirimClient
from tests.kirim.piecewise import Reply, piecewise_server

KEY = "kdv_live_testtesttesttesttesttest"


class Clock:
    """Each reading is `step` seconds after the last: every attempt costs that much."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def me(write: object, read: object) -> Reply:
    limits = {"tier": "pro", "write_per_minute": write, "read_per_minute": read}
    return Reply(200, msgspec.json.encode({"data": {"rate_limits": limits}}))


@pytest.mark.parametrize(
    ("configured", "learned", "budgets"),
    [
        ((None, None), Learned(600, 6000), Budgets(600, 6000, "api", "api")),
        ((1200, None), Learned(600, 6000), Budgets(1200, 6000, "settings", "api")),
        ((None, 900), Learned(600, None), Budgets(600, 900, "api", "settings")),
        (
            (None, None),
            Learned(None, None, "network_error: GET /me answered 403"),
            Budgets(DEFAULT_WRITE_PER_MINUTE, DEFAULT_READ_PER_MINUTE, "default", "default"),
        ),
        (
            (None, None),
            Learned(None, 6000),
            Budgets(DEFAULT_WRITE_PER_MINUTE, 6000, "default", "api"),
        ),
    ],
)
def test_choose_budgets(
    configured: tuple[int | None, int | None], learned: Learned, budgets: Budgets
) -> None:
    assert choose_budgets(configured, learned) == budgets


async def learn(*replies: Reply, step: float = 1.0) -> tuple[Learned, list[str]]:
    async with piecewise_server(*replies) as server:
        client = KirimClient(server.url, KEY, timeout_seconds=5.0)
        try:
            learned = await learn_rate_limits(
                client.rate_limits, asyncio.Event(), clock=Clock(step), first_delay=0.0
            )
        finally:
            await client.close()
    return learned, server.requests


async def test_a_numeric_string_answer_is_learned_after_failures() -> None:
    learned, requests = await learn(Reply(503), Reply(403), me("600", 6000.0))
    assert learned == Learned(600, 6000)
    assert requests == ["GET /v1/me HTTP/1.1"] * 3


@pytest.mark.parametrize("answer", [Reply(403), Reply(404), Reply(503), Reply(200, b"<html>")])
async def test_an_api_that_never_says_gives_up_within_the_patience(answer: Reply) -> None:
    # The clock reads 5 s at the start and 5 s more after each attempt: the seventh
    # ends at 35 s, past 30 s of patience.
    learned, requests = await learn(answer, step=5.0)
    assert (learned.write_per_minute, learned.read_per_minute) == (None, None)
    assert learned.problem is not None
    assert learned.problem.startswith("network_error")
    assert len(requests) == 7


async def test_nonsense_limits_are_an_answer_not_a_reason_to_wait() -> None:
    learned, requests = await learn(me("lots", None))
    assert learned == Learned(None, None)
    assert len(requests) == 1


async def test_a_stop_ends_the_wait_at_once() -> None:
    stop = asyncio.Event()
    stop.set()
    learned = await learn_rate_limits(_never_called, stop, clock=Clock(1.0))
    assert (learned.write_per_minute, learned.read_per_minute) == (None, None)


async def _never_called() -> tuple[int | None, int | None]:
    raise AssertionError("a stopped dispatcher asks nothing")
