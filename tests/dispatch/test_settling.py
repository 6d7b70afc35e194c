"""Settling against the sandbox and a real PostgreSQL: a delivery after a failure is not sent
twice, and a send whose answer was lost past its key finds the message it became."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from consumer.dispatch.request import idempotency_key, template_body
from runtime import defaults
from sandbox.config import Lifecycle, Outcomes
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from tests.dispatch.harness import (
    COMPONENTS,
    audit,
    ledger,
    new_sender_id,
    phones,
    record_failures,
    running_dispatcher,
    seed_campaign,
    wait_for,
)
from tests.dispatch.test_dispatcher import dispatch_settings, sandbox_config


async def _fold_failures(pool: asyncpg.Pool, campaign: uuid.UUID, sender: str) -> None:
    """What the projector folds from each message's `failed` webhook."""
    rows = await pool.fetch(
        """INSERT INTO message_statuses (message_id, phone_number_id, recipient_id, failed_at,
                                         error_code, provider_code, updated_at)
           SELECT message_id, $2, ltrim(phone, '+'), now(), 'whatsapp_upstream_error', 131000, now()
           FROM ledger WHERE campaign_id = $1 AND status = 'queued'
           ON CONFLICT (message_id) DO UPDATE SET failed_at = excluded.failed_at,
               error_code = excluded.error_code, provider_code = excluded.provider_code
           RETURNING message_id""",
        campaign,
        sender,
    )
    await record_failures(pool, [r["message_id"] for r in rows])


async def _all_queued(pool: asyncpg.Pool, campaign: uuid.UUID) -> bool:
    rows = await ledger(pool, campaign)
    return all(r["status"] == "queued" for r in rows)


async def test_a_delivery_after_a_failure_is_caught_before_a_resend(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender = new_sender_id()
    audience = phones(4, prefix="+62800")
    campaign = await seed_campaign(db_pool, sender, audience)
    config = sandbox_config(
        sender,
        outcomes=Outcomes(forced={"+62800": "whatsapp_upstream_error"}),
        lifecycle=Lifecycle(
            delivered_after_failed_probability=1.0, delivered_after_failed_delay_seconds=0.3
        ),
    )
    async with running_sandbox(SandboxSettings(port=0, config=config)) as sandbox:
        settings = dispatch_settings(sandbox.api_url, sender, failure_recheck_seconds=1.5)
        async with running_dispatcher(settings, db_pool, database_url):
            await wait_for(lambda: _all_queued(db_pool, campaign), within=30)
            await _fold_failures(db_pool, campaign, sender)
            started = time.monotonic()

            async def caught() -> bool:
                rows = await ledger(db_pool, campaign)
                return all(r["failure_checked_at"] is not None for r in rows)

            await wait_for(caught, within=30)
            assert time.monotonic() - started >= 1.0, "the recheck waits for its grace period"
        report = await audit(sandbox.control_url)
    rows = await ledger(db_pool, campaign)
    assert {(r["status"], r["generation"]) for r in rows} == {("queued", 0)}
    assert report["totals"]["accepted_sends"] == 4
    assert report["delivered_after_failed"]["total"] == 4


async def test_a_failure_the_api_still_calls_failed_is_sent_again(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender = new_sender_id()
    audience = phones(3, prefix="+62800")
    campaign = await seed_campaign(db_pool, sender, audience)
    config = sandbox_config(sender, outcomes=Outcomes(forced={"+62800": "whatsapp_upstream_error"}))
    async with running_sandbox(SandboxSettings(port=0, config=config)) as sandbox:
        settings = dispatch_settings(sandbox.api_url, sender, failure_recheck_seconds=1.0)
        async with running_dispatcher(settings, db_pool, database_url):
            await wait_for(lambda: _all_queued(db_pool, campaign), within=30)
            await _fold_failures(db_pool, campaign, sender)

            async def resent() -> bool:
                rows = await ledger(db_pool, campaign)
                return all(r["generation"] >= 1 for r in rows)

            await wait_for(resent, within=30)
    rows = await ledger(db_pool, campaign)
    assert all(r["failure_checked_at"] is None for r in rows)


async def test_an_in_doubt_send_past_its_key_finds_the_message_it_became(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    sender = new_sender_id()
    landed, lost = phones(2)
    campaign = await seed_campaign(db_pool, sender, [landed, lost])
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    await db_pool.execute(
        "UPDATE ledger SET uncertain_since = $2, attempts = 1 WHERE campaign_id = $1",
        campaign,
        long_ago,
    )
    async with running_sandbox(SandboxSettings(port=0, config=sandbox_config(sender))) as sandbox:
        # The send that landed while its answer was lost (timeout, crash), two hours ago.
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {defaults.KIRIM_API_KEY}"}
        ) as client:
            answer = await client.post(
                f"{sandbox.api_url}/{sender}/messages",
                content=template_body(landed, "promo_flash_sale", "id_ID", COMPONENTS),
                headers={
                    "Idempotency-Key": idempotency_key(str(campaign), landed),
                    "Content-Type": "application/json",
                },
            )
            message_id = answer.json()["data"]["id"]
        # Its webhook reached the projector.
        await db_pool.execute(
            """INSERT INTO message_statuses (message_id, phone_number_id, recipient_id, sent_at,
                                             updated_at)
               VALUES ($1, $2, $3, now(), now())""",
            message_id,
            sender,
            landed.removeprefix("+"),
        )
        settings = dispatch_settings(sandbox.api_url, sender, idempotency_ttl_seconds=3600.0)
        async with running_dispatcher(settings, db_pool, database_url):

            async def settled() -> bool:
                rows = await ledger(db_pool, campaign)
                return all(r["status"] != "pending" for r in rows)

            await wait_for(settled, within=30)
        report = await audit(sandbox.control_url)
    rows = {r["phone"]: r for r in await ledger(db_pool, campaign)}
    assert (rows[landed]["status"], rows[landed]["message_id"]) == ("queued", message_id)
    assert (rows[lost]["status"], rows[lost]["error_code"]) == ("failed", "outcome_unknown")
    assert report["totals"]["accepted_sends"] == 1, "nothing was sent again"
