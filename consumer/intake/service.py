"""Intake assembled from settings: its resources, the loop, and its health checks.

`intake_service(settings, pool, stack)` opens what intake needs on the caller's
`AsyncExitStack` (closed in reverse order) and returns the `Intake` to run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import asyncpg
import httpx

from consumer.intake.accounts import AccountDirectory, AccountsClient
from consumer.intake.deadletter import DeadLetterPublisher
from consumer.intake.handler import EventHandler
from consumer.intake.loop import IntakeLoop
from consumer.intake.statistics import LedgerStatistics
from consumer.intake.store import IntakeStore
from consumer.settings import CONSUMER_SERVICE, ConsumerSettings
from runtime.observe import HealthCheck


@dataclass(frozen=True, slots=True)
class Intake:
    loop: IntakeLoop
    accounts: AccountDirectory
    settings: ConsumerSettings

    def _accounts_check(self) -> tuple[bool, str]:
        waited = self.accounts.waiting_seconds()
        if waited > self.settings.accounts_alert_seconds:
            return False, f"waiting {waited:.0f}s for the Kirim accounts API"
        return True, "ok" if not waited else f"waiting {waited:.0f}s for the accounts API"

    def health_checks(self) -> Mapping[str, HealthCheck]:
        return {**self.loop.health_checks(), "accounts": self._accounts_check}


async def intake_service(
    settings: ConsumerSettings,
    pool: asyncpg.Pool,
    stack: contextlib.AsyncExitStack,
    *,
    accounts_transport: httpx.AsyncBaseTransport | None = None,
) -> Intake:
    """Build intake on `stack`; `accounts_transport` replaces the HTTP transport (tests)."""
    # One thread for the CPU-heavy steps: they hold the GIL anyway, and the event loop
    # keeps its turns for heartbeats and database I/O.
    executor = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="intake-cpu"))
    client = AccountsClient(
        settings.kirim_base_url,
        settings.kirim_api_key,
        timeout_seconds=settings.accounts_timeout_seconds,
        transport=accounts_transport,
    )
    stack.push_async_callback(client.aclose)
    directory = AccountDirectory(
        client,
        cache_seconds=settings.accounts_cache_seconds,
        stale_seconds=settings.accounts_stale_seconds,
        retry_max_seconds=settings.accounts_retry_max_seconds,
    )
    dead_letters = DeadLetterPublisher(
        settings.bootstrap_servers, settings.requests_dlq_topic, service=CONSUMER_SERVICE
    )
    await dead_letters.start()
    stack.push_async_callback(dead_letters.stop)
    statistics = LedgerStatistics(pool, settings.intake_analyze_every_rows)
    stack.push_async_callback(statistics.close)
    handler = EventHandler(IntakeStore(pool, statistics), directory, dead_letters, executor)
    return Intake(IntakeLoop(settings, handler), directory, settings)
