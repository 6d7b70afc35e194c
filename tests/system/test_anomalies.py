"""Every answer an API should not give, through a real `python -m consumer` process.

The sandbox answers a share of sends with each anomaly kind (a reused, missing or
unstorable message id, a body that is HTML, text or megabytes, an unknown error code),
besides 5xx and late answers. The process must stay alive, nobody may be sent twice,
and every affected recipient must show its reason in the read model and in
`broadcast failed`.
"""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter

import asyncpg

from cli.app import invoke
from sandbox.config import (
    Account,
    Anomalies,
    Faults,
    LateAnswers,
    RateLimits,
    RuntimeConfig,
    ServerErrors,
)
from tests.children import stop_all
from tests.system.conftest import SystemFactory, new_sender
from tests.system.harness import accepted_messages, audience, audit, eventually, publish_campaign

RECIPIENTS = 800
UNKNOWN_CODE = "unexpected_condition"


async def _nothing_pending(pool: asyncpg.Pool, campaign: uuid.UUID) -> bool:
    counts = await pool.fetch(
        "SELECT status, count(*) AS n FROM ledger WHERE campaign_id = $1 GROUP BY status", campaign
    )
    by_status: dict[str, int] = {r["status"]: r["n"] for r in counts}
    return sum(by_status.values()) == RECIPIENTS and by_status.get("pending", 0) == 0


async def test_no_answer_stops_the_consumer_or_sends_twice(
    system: SystemFactory, db_pool: asyncpg.Pool
) -> None:
    sender = new_sender()
    faults = Faults(
        anomalies=Anomalies(probability=0.06),
        server_errors=ServerErrors(probability=0.03),
        late_answers=LateAnswers(probability=0.01, delay_seconds=3.0),
    )
    config = RuntimeConfig(
        accounts={sender: Account(messaging_tier=100_000)},
        rate_limits=RateLimits(write_per_minute=60_000, read_per_minute=60_000),
        faults=faults,
    )
    async with system(config, [sender]) as sys_:
        campaign = await publish_campaign(sys_, sender, audience(RECIPIENTS, seed=11), 200)
        consumer, _ = await sys_.start_consumer("consumer")
        try:
            await eventually(lambda: _nothing_pending(db_pool, campaign), within=120)
            assert consumer.process.returncode is None, consumer.describe()
        finally:
            await stop_all([consumer])
        report = await audit(sys_)
        accepted = await accepted_messages(sys_, sender)

    injected = report["anomalies"]["injected"]
    kinds = Counter(entry["kind"] for entry in injected)
    assert len(kinds) >= 5, f"the mix exercised too few kinds: {kinds}"

    # Nobody has two messages that did not fail; the ledger holds only ids the API gave them.
    per_phone = Counter(message["to"] for message in accepted)
    assert max(per_phone.values()) == 1
    rows = {
        r["phone"]: r
        for r in await db_pool.fetch(
            "SELECT * FROM campaign_recipient_status WHERE campaign_id = $1", campaign
        )
    }
    true_ids = {message["to"]: message["id"] for message in accepted}
    for phone, row in rows.items():
        if row["message_id"] is not None:
            assert row["message_id"] == true_ids[phone]

    # Each recipient that met an anomaly shows why, and was not sent again.
    for entry in injected:
        row = rows[entry["to"]]
        if entry["kind"] == "unknown_code":
            assert (row["status"], row["error_code"]) == ("failed", UNKNOWN_CODE)
            assert entry["to"] not in per_phone
        else:
            assert (row["status"], row["error_code"]) == ("failed", "api_anomaly"), entry
            assert row["error_message"], entry
            assert per_phone[entry["to"]] == 1
    affected = {entry["to"] for entry in injected}
    others = [row for phone, row in rows.items() if phone not in affected]
    assert all(row["status"] in {"queued", "sent", "delivered", "read"} for row in others)

    out, err = io.StringIO(), io.StringIO()
    env = {"DATABASE_URL": sys_.database_url}
    assert await invoke(["failed", str(campaign), "--json"], env, out, err) == 0, err.getvalue()
    buckets = {b["code"]: b for b in json.loads(out.getvalue())["buckets"]}
    anomalies = sum(1 for e in injected if e["kind"] != "unknown_code")
    assert buckets["api_anomaly"]["count"] == anomalies
    assert buckets["api_anomaly"]["kind"] == "unknown"
