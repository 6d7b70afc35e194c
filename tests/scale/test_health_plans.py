"""The template-health breaker's statements stay index-backed as its tables grow.

Like tests/scale/test_plans.py (whose EXPLAIN helpers this uses), for the named queries
of consumer/dispatch/sql/health.sql: inside a transaction that is rolled back, 5,000
campaigns (a tenth active) with minute counts (a day of them for 300 campaigns, an hour
for the rest: 0.7M rows) and 200,000 counted failures are written and analysed, then
each statement is explained with the arguments the shell passes, as its custom and its
generic plan. None may read
quality_counts, quality_failures or campaigns (nor the tables test_plans.py guards) with
a sequential scan: a claim's judgement must cost its campaigns' windows, not every
campaign's counts.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumer.dispatch.breaker import bucket_of
from consumer.dispatch.health import Q as HEALTH
from tests.scale.test_plans import GROWING, plans

# Not senders: an organisation has a handful of numbers, read whole in one page.
CHECKED = GROWING | {"quality_counts", "quality_failures", "campaigns"}

pytestmark = pytest.mark.timeout(240)

SEED = [
    """INSERT INTO senders (phone_number_id, quality_rating, updated_at)
       SELECT (106540352250000 + s)::text, 'GREEN', now() FROM generate_series(1, 50) AS s""",
    """INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
           template_language, template_components, header_fingerprint, chunk_count, state)
       SELECT md5('health:' || n)::uuid, 'x', (106540352250000 + n % 50 + 1)::text, 't', 'id',
              '[]', 'plans', 1, CASE WHEN n % 10 = 0 THEN 'active' ELSE 'paused' END
       FROM generate_series(1, 5000) AS n""",
    """INSERT INTO quality_counts (campaign_id, minute, sends, health_failures)
       SELECT md5('health:' || n)::uuid,
              date_trunc('minute', now()) - make_interval(mins => m), 30, m % 3
       FROM generate_series(1, 5000) AS n
       CROSS JOIN LATERAL generate_series(0, CASE WHEN n <= 300 THEN 1439 ELSE 59 END) AS m""",
    """INSERT INTO quality_failures (message_id, campaign_id)
       SELECT 'msg_plans_' || f, md5('health:' || (f % 5000 + 1))::uuid
       FROM generate_series(1, 200000) AS f""",
    "ANALYZE senders, campaigns, quality_counts, quality_failures",
]


def _arguments() -> dict[str, tuple[Any, ...]]:
    now = datetime.now(UTC)
    minute = datetime.fromtimestamp(bucket_of(now.timestamp()), UTC)
    # md5('health:10') etc.: active campaigns of the seed, as a claim judges them.
    claim = [_seeded(n) for n in (10, 20, 30)]
    n = 50
    return {
        "count_sends": ([claim[0]] * n, [now] * n, [minute] * n, [1] * n, [0] * n),
        "count_failures": (
            [f"msg_new_{i}" for i in range(n)],
            [claim[i % 3] for i in range(n)],
            [now] * n,
            [minute] * n,
        ),
        "campaign_guards": (claim,),
        "window_tallies": (claim, [now - timedelta(hours=1)] * len(claim)),
        "trip": ([claim[0]], ["failure_rate"], [600], [10], [5], [0.2], [None], [None]),
        "record_quality": ("106540352250001", "YELLOW"),
    }


def _seeded(n: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"health:{n}".encode()).hexdigest())


async def test_every_health_statement_is_index_backed(database_url: str) -> None:
    arguments = _arguments()
    assert set(arguments) == set(HEALTH), "every named health query is explained here"
    connection = await asyncpg.connect(database_url)
    found: dict[str, list[str]] = {}
    transaction = connection.transaction()
    await transaction.start()
    try:
        for statement in SEED:
            await connection.execute(statement)
        for name, args in arguments.items():
            sql = HEALTH[name].strip().rstrip(";")
            for kind, plan in zip(
                ("custom", "generic"), await plans(connection, sql, args), strict=True
            ):
                scans = [t for t in _scans(plan) if t in CHECKED]
                if scans:
                    found[f"{name} ({kind})"] = scans
    finally:
        await transaction.rollback()
        await connection.close()
    assert found == {}


def _scans(plan: dict[str, Any]) -> list[str]:
    """Every relation the plan (a node of EXPLAIN's JSON) reads whole."""
    found = [str(plan["Relation Name"])] if plan.get("Node Type") == "Seq Scan" else []
    for child in plan.get("Plans", []):
        found.extend(_scans(child))
    return found
