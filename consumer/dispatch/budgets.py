"""The organisation's request budgets at start: from settings, else `GET /v1/me`, else defaults.

The write budget only seeds the pacer: every send's answer carries
`X-RateLimit-Limit` and the pacer takes the limit from it (`RatePacer.observe`), so
a wrong start is corrected by the first answer. Waiting for `/v1/me` is therefore
bounded (`patience`): an API that cannot say (a 403 or 404 there, a body that cannot
be read, a run of 429s on the read bucket) must not keep the dispatcher from sending.
The defaults are the free plan's, the smallest there is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from consumer.kirim.client import KirimTransportError
from runtime.events import wait_any
from runtime.logs import get_logger

log = get_logger(__name__)

DEFAULT_WRITE_PER_MINUTE: Final = 60
DEFAULT_READ_PER_MINUTE: Final = 600
PATIENCE_SECONDS: Final = 30.0

Limits = tuple[int | None, int | None]


@dataclass(frozen=True, slots=True)
class Learned:
    """What `GET /v1/me` said; `problem` is why it said nothing, when it did not answer."""

    write_per_minute: int | None
    read_per_minute: int | None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Budgets:
    write_per_minute: int
    read_per_minute: int
    # Where each came from: "settings", "api" or "default".
    write_from: str
    read_from: str


def _pick(configured: int | None, learned: int | None, default: int) -> tuple[int, str]:
    if configured:
        return configured, "settings"
    if learned:
        return learned, "api"
    return default, "default"


def choose_budgets(configured: Limits, learned: Learned) -> Budgets:
    write, write_from = _pick(configured[0], learned.write_per_minute, DEFAULT_WRITE_PER_MINUTE)
    read, read_from = _pick(configured[1], learned.read_per_minute, DEFAULT_READ_PER_MINUTE)
    return Budgets(write, read, write_from, read_from)


async def learn_rate_limits(
    read_me: Callable[[], Awaitable[Limits]],
    stop: asyncio.Event,
    *,
    clock: Callable[[], float],
    patience: float = PATIENCE_SECONDS,
    first_delay: float = 0.5,
    max_delay: float = 10.0,
) -> Learned:
    """Ask `read_me` (`KirimClient.rate_limits`) until it answers, with capped backoff,
    for at most about `patience` seconds (a last request may add its timeout)."""
    started, delay = clock(), first_delay
    problem = "stopped"
    while not stop.is_set():
        try:
            write, read = await read_me()
        except KirimTransportError as error:
            problem = str(error)
        else:
            return Learned(write, read)
        if clock() - started + delay > patience:
            break
        log.info("kirim_me_retry", error=problem, delay=delay)
        await wait_any(stop, within=delay)
        delay = min(delay * 2, max_delay)
    return Learned(None, None, problem)
