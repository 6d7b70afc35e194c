"""The console's PostgreSQL side: named reads of the public views, and the audit trail.

Reads only, apart from `record_action`. Actions themselves go through the CLI's own
functions (console/actions.py), so the console has no write path of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import asyncpg

from cli.database import Q as CLI_QUERIES
from console.tally import Group, Tally
from runtime.sqlfiles import load_queries

Q: Final = load_queries(Path(__file__).with_name("sql") / "queries.sql")


@dataclass(frozen=True, slots=True)
class CampaignRow:
    campaign_id: uuid.UUID
    state: str
    state_reason: str | None
    phone_number_id: str | None
    template_name: str
    template_language: str
    chunk_count: int
    chunks_received: int
    recipients_received: int
    created_at: datetime
    updated_at: datetime
    send_at: datetime | None
    # Issue 13's options as the request gave them (NULL: absent; console/options.py).
    priority: str
    quiet_hours: dict[str, Any] | None
    quality_guard: dict[str, Any] | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> CampaignRow:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class ThroughputBucket:
    starts_at: float  # epoch seconds
    seconds: float
    count: int

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float(self.count)


@dataclass(frozen=True, slots=True)
class Action:
    action_id: int
    at: datetime
    actor: str
    role: str
    action: str
    campaign_id: uuid.UUID | None
    detail: str | None
    outcome: str


class ConsoleStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def campaigns(self, state: str | None, limit: int, offset: int) -> list[CampaignRow]:
        rows = await self._pool.fetch(Q["campaigns_page"], state, limit, offset)
        return [CampaignRow.of(r) for r in rows]

    async def campaign_count(self, state: str | None) -> int:
        return int(await self._pool.fetchval(Q["campaigns_count"], state))

    async def campaign(self, campaign_id: uuid.UUID) -> CampaignRow | None:
        row = await self._pool.fetchrow(Q["campaign"], campaign_id)
        return None if row is None else CampaignRow.of(row)

    async def tally(self, campaign_id: uuid.UUID) -> Tally:
        rows = await self._pool.fetch(Q["campaign_tally"], campaign_id)
        return Tally.of(
            Group(r["status"], r["reason"], r["error_code"], r["count"], r["updated_at"])
            for r in rows
        )

    async def throughput(self, campaign_id: uuid.UUID, buckets: int) -> list[ThroughputBucket]:
        rows = await self._pool.fetch(Q["campaign_throughput"], campaign_id, buckets)
        if not rows:
            return []
        lo, hi = float(rows[0]["lo"]), float(rows[0]["hi"])
        width = max((hi + 0.001 - lo) / buckets, 1e-3)
        return [
            ThroughputBucket(lo + (int(r["bucket"]) - 1) * width, width, int(r["count"]))
            for r in rows
        ]

    async def senders(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._pool.fetch(Q["senders"])]

    async def quiet_openings(self, campaign_id: uuid.UUID) -> list[tuple[datetime, int]]:
        """When the campaign's recipients waiting out their quiet hours may go, how many."""
        rows = await self._pool.fetch(CLI_QUERIES["quiet_openings"], campaign_id)
        return [(r["opens_at"], int(r["count"])) for r in rows]

    async def quality_trip(self, campaign_id: uuid.UUID) -> dict[str, Any] | None:
        """The template-health breaker's last trip of the campaign, with its figures."""
        row = await self._pool.fetchrow(CLI_QUERIES["quality_trip"], campaign_id)
        return dict(row) if row is not None else None

    async def sender(self, phone_number_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(Q["sender"], phone_number_id)
        return None if row is None else dict(row)

    async def quota_used(self, budget_key: str, window_seconds: int, now: datetime) -> int:
        since = now - timedelta(seconds=window_seconds)
        return int(await self._pool.fetchval(Q["quota_used"], budget_key, since))

    async def owners(self, phone_number_ids: Sequence[str]) -> dict[str, str]:
        """Sender -> the dispatcher instance that holds it (its application_name)."""
        rows = await self._pool.fetch(Q["sender_owners"], list(phone_number_ids))
        return {r["phone_number_id"]: r["application_name"] or f"pid {r['pid']}" for r in rows}

    async def recipient(self, phone: str, limit: int) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._pool.fetch(Q["recipient_messages"], phone, limit)]

    async def record_action(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        campaign_id: uuid.UUID | None,
        detail: str | None,
        outcome: str,
    ) -> None:
        await self._pool.execute(
            Q["record_action"], actor, role, action, campaign_id, detail, outcome
        )

    async def actions(self, campaign_id: uuid.UUID, limit: int) -> list[Action]:
        rows = await self._pool.fetch(Q["campaign_actions"], campaign_id, limit)
        return [Action(campaign_id=campaign_id, **dict(r)) for r in rows]
