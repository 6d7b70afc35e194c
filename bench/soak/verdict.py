"""The invariants, checked from the outside once the soak has drained.

Each check reads only what an operator or the API's own records can see: the
sandbox's list of accepted messages (what really went out), the read model in
PostgreSQL, the topics. A check returns its figure and whether it holds.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.soak.traffic import FORGED_MARKER, Campaign, Forgeries, Published


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    holds: bool
    figure: str


async def sandbox_messages(control_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    after = "0"
    async with httpx.AsyncClient(timeout=60) as http:
        while True:
            answer = await http.get(
                control_url + "/messages", params={"after": after, "limit": "10000"}
            )
            answer.raise_for_status()
            body = answer.json()
            messages.extend(body["data"])
            if not body.get("has_more"):
                return messages
            after = body["next_cursor"]


def duplicates(messages: list[dict[str, Any]]) -> Check:
    """Invariant 1: at most one message per (sender, recipient) that did not fail."""
    alive = Counter((m["phone_number_id"], m["to"]) for m in messages if m["status"] != "failed")
    twice = sum(1 for n in alive.values() if n > 1)
    return Check("0 duplicate non-failed messages per recipient", twice == 0, f"{twice}")


async def lost(pool: asyncpg.Pool, campaigns: list[Campaign]) -> tuple[Check, dict[str, int]]:
    """Invariant 2: every eligible recipient accepted, failed with a code or skipped with
    a reason; every ineligible one skipped with the designed reason."""
    outcomes: Counter[str] = Counter()
    missing = wrong = 0
    for campaign in campaigns:
        rows = {
            r["phone"]: r
            for r in await pool.fetch(
                "SELECT phone, status, reason, message_id, error_code FROM ledger"
                " WHERE campaign_id = $1",
                campaign.campaign_id,
            )
        }
        for person in campaign.people:
            row = rows.get(person.phone)
            if row is None:
                if person.eligible:
                    missing += 1
                continue
            status = row["status"]
            if not person.eligible:
                wrong += row["status"] != "skipped" or row["reason"] != person.skip_reason
                outcomes[f"skipped: {row['reason']}"] += 1
            elif status == "queued" and row["message_id"]:
                outcomes["accepted"] += 1
            elif status == "failed" and row["error_code"]:
                outcomes[f"failed: {row['error_code']}"] += 1
            elif status == "skipped" and row["reason"]:
                outcomes[f"skipped: {row['reason']}"] += 1
            else:
                missing += 1
    figure = f"{missing} lost, {wrong} skipped for a wrong reason"
    return Check("0 eligible recipients lost", missing == 0 and wrong == 0, figure), dict(outcomes)


async def topic_records(bootstrap: str, topic: str, partition_count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(partition_count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for items in batch.values():
                records.extend(items)
        return records
    finally:
        await consumer.stop()


def dead_letters(records: list[Any], published: Published) -> Check:
    """Every malformed event dead-lettered with its original bytes and a reason."""
    with_reason = {
        r.value for r in records if any(k == "dlq.reason" and v for k, v in (r.headers or ()))
    }
    without = sum(1 for r in records if r.value not in with_reason)
    kept = published.malformed_values & with_reason
    figure = (
        f"{len(kept)} of {len(published.malformed_values)} malformed events, "
        f"{len(records)} dead letters, {without} without a reason"
    )
    holds = kept == published.malformed_values and without == 0
    return Check("every dead letter with a reason", holds, figure)


def forged(records: list[Any], forgeries: Forgeries) -> Check:
    """Invariant 4: no forged or stale webhook acknowledged, none in the status topic."""
    stored = sum(1 for r in records if FORGED_MARKER.encode() in (r.value or b""))
    answers = ", ".join(f"{status}: {n}" for status, n in sorted(forgeries.answers.items()))
    holds = stored == 0 and forgeries.acknowledged == 0
    return Check(
        "0 forged webhooks acknowledged or stored", holds, f"{stored} stored; answers {answers}"
    )


async def projection_dump(pool: asyncpg.Pool, campaign_ids: list[uuid.UUID]) -> list[Any]:
    rows = await pool.fetch(
        "SELECT campaign_id, phone, status, reason, message_id, error_code, updated_at"
        " FROM campaign_recipient_status WHERE campaign_id = ANY($1::uuid[])"
        " ORDER BY campaign_id, phone",
        campaign_ids,
    )
    statuses = await pool.fetch("SELECT * FROM message_statuses ORDER BY message_id")
    return [tuple(r) for r in rows] + [tuple(r) for r in statuses]


def same_projection(before: list[Any], after: list[Any]) -> Check:
    """Invariant 5: the projection after a full replay equals the one before it."""
    differing = len(set(before) ^ set(after))
    figure = f"{len(before):,} rows compared, {differing} differ"
    return Check("projection equal to a full rebuild from the topic", differing == 0, figure)


def webhooks_pending(report: dict[str, Any]) -> int:
    """Status events the sandbox has not finished delivering (or given up on)."""
    hooks = report["webhooks"]
    settled = sum(
        int(hooks[name])
        for name in ("succeeded", "failed_final", "exhausted", "abandoned", "dropped_backlog")
    )
    return int(hooks["events"]) - settled


async def agrees_with_api(
    pool: asyncpg.Pool, campaign_ids: list[uuid.UUID], messages: list[dict[str, Any]]
) -> Check:
    """Invariant 4 seen from the end: every status the API reported and the bridge
    acknowledged is in the read model, so for each accepted message the read model
    says what the API says."""
    api_status = {m["id"]: m["status"] for m in messages}
    rows = await pool.fetch(
        "SELECT message_id, status FROM campaign_recipient_status"
        " WHERE campaign_id = ANY($1::uuid[]) AND message_id IS NOT NULL",
        campaign_ids,
    )
    differing = [r for r in rows if api_status.get(r["message_id"]) != r["status"]]
    examples = ", ".join(
        f"{r['status']} vs {api_status.get(r['message_id'])}" for r in differing[:3]
    )
    figure = f"{len(rows):,} messages, {len(differing)} differ" + (
        f" (read model vs API: {examples})" if differing else ""
    )
    return Check("read model equal to the API's status of every message", not differing, figure)
