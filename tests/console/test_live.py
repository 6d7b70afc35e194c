"""A campaign sending for real, watched and steered from the console in a browser.

Real `python -m consumer` against the sandbox (paced, so the campaign lasts), real
Kafka and PostgreSQL; the console in-process. The live figures move without a reload
(server-sent events), and Pause, Resume and Cancel act on the dispatcher through the
control events, each recorded in the audit trail.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from playwright.async_api import Page, expect

from sandbox.config import Account, Faults, Latency, RateLimits, RuntimeConfig
from tests.children import stop_all
from tests.console.browser import screenshot
from tests.console.conftest import running_console
from tests.system.conftest import SystemFactory, new_sender
from tests.system.harness import audience, audit, eventually, publish_campaign

pytestmark = pytest.mark.timeout(180)

RECIPIENTS = 1_500


async def _accepted(system: object) -> int:
    return int((await audit(system))["totals"]["accepted_sends"])  # type: ignore[arg-type]


async def _number(page: Page, status: str) -> int:
    return int((await page.locator(f"b[data-status={status}]").inner_text()).replace(",", ""))


async def _act(page: Page, action: str, reason: str | None = None) -> None:
    await page.click(f"a[data-action={action}]")
    if reason is not None:
        await page.fill("#confirm input[name=reason]", reason)
    await page.click("#confirm button[type=submit]")
    await expect(page.locator("#outcome")).to_contain_text(f"{action}: ok")


async def test_live_progress_moves_and_the_buttons_steer_the_dispatcher(
    system: SystemFactory, db_pool: asyncpg.Pool, page: Page
) -> None:
    sender = new_sender()
    config = RuntimeConfig(
        accounts={sender: Account(messaging_tier=100_000, quality_rating="GREEN")},
        rate_limits=RateLimits(write_per_minute=60_000, read_per_minute=60_000),
        faults=Faults(latency=Latency(fixed_ms=40.0)),
    )
    async with system(config, [sender]) as sys_:
        # One send at a time at 40 ms: ~25 sends/s, a minute for the whole campaign,
        # long enough to watch it and steer it.
        sys_.extra["DISPATCH_CONCURRENCY"] = "100000:1"
        consumer, _ = await sys_.start_consumer("consumer")
        try:
            campaign = await publish_campaign(sys_, sender, audience(RECIPIENTS, seed=77))

            async def stored() -> bool:
                state = await db_pool.fetchval(
                    "SELECT state FROM campaigns WHERE campaign_id = $1", campaign
                )
                return state is not None

            await eventually(stored, within=30)
            async with running_console(
                sys_.database_url,
                sys_.bootstrap,
                requests_topic=sys_.requests_topic,
                dlq_topic=sys_.dlq_topic,
                kirim_base_url=sys_.sandbox.api_url,
                live_interval=0.3,
            ) as console:
                await console.sign_in(page, path=f"/campaigns/{campaign}")
                url = f"{console.url}/campaigns/{campaign}"
                assert page.url == url

                # Live: the queued figure grows with no reload (a reload would drop the mark).
                await expect(page.locator("b[data-status=queued]")).to_be_attached(timeout=10_000)
                await page.evaluate("window.notReloaded = true")
                before = await _number(page, "queued")
                await expect(page.locator("b[data-status=queued]")).not_to_have_text(
                    f"{before:,}", timeout=10_000
                )
                assert await page.evaluate("window.notReloaded === true")
                assert await _number(page, "queued") > before
                await screenshot(page, "campaign-live")

                # Senders: the consumer that owns the number, by its lock in PostgreSQL.
                await page.goto(f"{console.url}/senders")
                await expect(page.locator(f"#senders tr[data-sender='{sender}']")).to_contain_text(
                    "consumer "
                )
                await page.goto(url)

                # Pause: the dispatcher stops sending (in-flight sends may still land).
                await _act(page, "pause", reason="checking the template")

                async def paused() -> bool:
                    state = await db_pool.fetchval(
                        "SELECT state FROM campaigns WHERE campaign_id = $1", campaign
                    )
                    return bool(state == "paused")

                await eventually(paused, within=15)
                await asyncio.sleep(1.0)
                held = await _accepted(sys_)
                await asyncio.sleep(2.0)
                assert await _accepted(sys_) == held
                assert held < RECIPIENTS
                await page.goto(url)
                await expect(page.locator("#state")).to_have_text("paused")
                await expect(page.locator("#reasons")).to_contain_text("paused")

                # Resume: sending goes on.
                await _act(page, "resume")

                async def moving() -> bool:
                    return await _accepted(sys_) > held

                await eventually(moving, within=15)

                # Cancel: stops for good; whoever was not sent is skipped as cancelled.
                await _act(page, "cancel", reason="the sale ended early")

                async def settled() -> bool:
                    # Nothing pending, and a send that was in flight when the cancel
                    # came is recorded as what it was: accepted (queued).
                    row = await db_pool.fetchrow(
                        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending,"
                        " count(*) FILTER (WHERE status = 'queued') AS queued"
                        " FROM ledger WHERE campaign_id = $1",
                        campaign,
                    )
                    assert row is not None
                    return bool(row["pending"] == 0 and row["queued"] == await _accepted(sys_))

                await eventually(settled, within=20)
                cancelled = await db_pool.fetchval(
                    "SELECT count(*) FROM ledger WHERE campaign_id = $1 AND reason = 'cancelled'",
                    campaign,
                )
                accepted = await _accepted(sys_)
                assert cancelled > 0
                assert accepted + cancelled == RECIPIENTS
                await page.goto(url)
                await expect(page.locator("#state")).to_have_text("cancelled")
                audit_rows = page.locator("#audit tbody tr")
                await expect(audit_rows).to_have_count(3)
                await expect(audit_rows.nth(0)).to_contain_text("cancel")
                await expect(audit_rows.nth(0)).to_contain_text("the sale ended early")
                await expect(audit_rows.nth(2)).to_contain_text("pause")
                await expect(page.locator("a[data-action=pause]")).to_have_count(0)
        finally:
            await stop_all([consumer])
