"""Intake analyzes the ledger after many new pending rows, once at a time, in the background."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import REGISTRY

from consumer.intake.statistics import LedgerStatistics


async def _analyzes(pool: asyncpg.Pool) -> int:
    return int(
        await pool.fetchval(
            "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'ledger'"
        )
    )


def _started() -> float:
    return REGISTRY.get_sample_value("broadcast_intake_ledger_analyzes_total") or 0.0


async def test_an_analyze_follows_every_threshold_of_new_rows(db_pool: asyncpg.Pool) -> None:
    statistics = LedgerStatistics(db_pool, every_rows=100)
    before, counted = await _analyzes(db_pool), _started()
    statistics.added(60)
    await asyncio.sleep(0.2)
    assert _started() == counted  # not yet: 60 of 100

    statistics.added(60)
    await statistics.close_when_idle()
    assert _started() == counted + 1
    # The server's own count moves when its statistics collector reports (PG 15+: at once).
    for _ in range(50):
        if await _analyzes(db_pool) > before:
            break
        await asyncio.sleep(0.1)
    assert await _analyzes(db_pool) > before


async def test_zero_leaves_it_to_autovacuum(db_pool: asyncpg.Pool) -> None:
    statistics = LedgerStatistics(db_pool, every_rows=0)
    counted = _started()
    statistics.added(10**9)
    await statistics.close_when_idle()
    assert _started() == counted
