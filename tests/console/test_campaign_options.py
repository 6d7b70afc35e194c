"""Issue 13 in the console, with real data: a campaign's sending options, a campaign the
quality guard paused (also while someone watches it), and the opt-in each send relied on
on the recipients page; viewers still see masked numbers.

Campaigns are seeded in SQL as intake and the dispatcher leave them (tests/console/seed.py
plus the options' columns of migration 0011); pages are opened in the real browser.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from playwright.async_api import Page, expect

from console.access import mask_number
from tests.console.browser import screenshot
from tests.console.conftest import VIEWER_TOKEN, RunningConsole, running_console
from tests.console.seed import Seeded, seed_campaign

pytestmark = pytest.mark.timeout(120)

OPTED = datetime(2026, 1, 5, 10, tzinfo=UTC)
QUIET = {"start": "21:00", "end": "08:00", "time_zone": "Asia/Jakarta"}
GUARD = {"enabled": True, "max_failure_rate": 0.05, "pause_at_quality": "YELLOW"}


@pytest.fixture
async def seeded(console_database: str) -> AsyncIterator[tuple[Seeded, Seeded]]:
    """Two campaigns to the same phones: one with every option and a consent source per
    recipient, one with none (the defaults) and `opted_in_at` alone."""
    pool = await asyncpg.create_pool(console_database, min_size=1, max_size=2)
    try:
        guarded = await seed_campaign(pool, 60)
        plain = await seed_campaign(pool, 60, template="order_update")
        await pool.execute(
            "UPDATE campaigns SET priority = 'transactional', quiet_hours = $2::jsonb,"
            " quality_guard = $3::jsonb WHERE campaign_id = $1",
            guarded.campaign_id,
            json.dumps(QUIET),
            json.dumps(GUARD),
        )
        await pool.execute(
            "UPDATE ledger SET opted_in_at = $2,"
            " opt_in_source = CASE WHEN campaign_id = $1 THEN 'checkout_form' END"
            " WHERE campaign_id = ANY($3::uuid[])",
            guarded.campaign_id,
            OPTED,
            [guarded.campaign_id, plain.campaign_id],
        )
        yield guarded, plain
    finally:
        await pool.close()


@pytest.fixture
async def console(
    console_database: str, kafka_bootstrap: str, seeded: tuple[Seeded, Seeded]
) -> AsyncIterator[RunningConsole]:
    async with running_console(console_database, kafka_bootstrap) as running:
        yield running


async def test_the_campaign_page_shows_its_options_and_a_guard_pause(
    console: RunningConsole, page: Page, seeded: tuple[Seeded, Seeded]
) -> None:
    guarded, plain = seeded
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await console.sign_in(page)

    await page.goto(f"{console.url}/campaigns/{plain.campaign_id}")
    options = page.locator("#options")
    await expect(options.locator("[data-option=priority] dd")).to_have_text("bulk (the default)")
    await expect(options.locator("[data-option='quiet hours'] dd")).to_contain_text("none")
    await expect(options.locator("[data-option='quality guard'] dd")).to_have_text(
        "defaults (the dispatcher's configuration)"
    )
    await expect(options.locator("dd.default")).to_have_count(3)

    await page.goto(f"{console.url}/campaigns/{guarded.campaign_id}")
    await expect(options.locator("[data-option=priority] dd")).to_contain_text("transactional")
    await expect(options.locator("[data-option='quiet hours'] dd")).to_have_text(
        "21:00-08:00 in each recipient's local time; fallback zone Asia/Jakarta"
    )
    await expect(options.locator("[data-option='quality guard'] dd")).to_have_text(
        "on; pauses above 5% engagement failures; pauses at quality YELLOW or worse; "
        "window, min sends: default"
    )
    await expect(options.locator("dd.default")).to_have_count(0)
    await expect(page.locator("#guard-paused")).to_have_count(0)
    await expect(page.locator("#counted")).to_be_attached()  # the live block has landed

    # The guard trips while the page is open: the live block says so without a reload.
    await console.pool.execute(
        "UPDATE campaigns SET state = 'paused', state_reason = 'quality_guard',"
        " updated_at = now() WHERE campaign_id = $1",
        guarded.campaign_id,
    )
    await console.pool.execute(
        "INSERT INTO quality_trips (campaign_id, tripped_at, rule, window_seconds, sends,"
        " health_failures, max_failure_rate, quality_before, quality_after)"
        " VALUES ($1, now(), 'quality_rating', 3600, 0, 0, 0.1, 'GREEN', 'YELLOW')",
        guarded.campaign_id,
    )
    await expect(page.locator("#guard-paused")).to_contain_text(
        "Paused by the quality guard", timeout=15_000
    )
    # Opened afresh: the state, the banner, and Resume, which only an operator chooses.
    await page.goto(f"{console.url}/campaigns/{guarded.campaign_id}")
    await expect(page.locator("#state")).to_have_text("paused")
    await expect(page.locator("#guard-paused")).to_contain_text("until an operator resumes it")
    await expect(page.locator("#guard-trip")).to_contain_text(
        "the number's quality rating fell from GREEN to YELLOW"
    )
    await expect(page.locator("a[data-action=resume]")).to_have_count(1)
    await screenshot(page, "campaign-quality-guard")
    assert errors == []


async def test_recipients_show_the_opt_in_each_send_relied_on(
    console: RunningConsole, page: Page, seeded: tuple[Seeded, Seeded]
) -> None:
    guarded, plain = seeded
    phone = guarded.phones[24]  # the same phone in both campaigns
    await console.sign_in(page)
    await page.goto(f"{console.url}/recipients?phone={phone.replace('+', '%2B')}")
    rows = page.locator("#messages tbody tr")
    await expect(rows).to_have_count(2)
    by_campaign = {}
    for index in range(2):
        row = rows.nth(index)
        link = await row.locator("a").get_attribute("href")
        by_campaign[link] = (
            await row.locator("td.opted-in").inner_text(),
            await row.locator("td.opt-in-source").inner_text(),
        )
    assert by_campaign == {
        f"/campaigns/{guarded.campaign_id}": ("2026-01-05 10:00:00 UTC", "checkout_form"),
        f"/campaigns/{plain.campaign_id}": ("2026-01-05 10:00:00 UTC", "-"),
    }

    # A viewer sees the consent too, and the number masked, as everywhere.
    async with httpx.AsyncClient(base_url=console.url) as http:
        answer = await http.get(
            "/recipients",
            params={"phone": phone},
            headers={"authorization": f"Bearer {VIEWER_TOKEN}"},
        )
    assert answer.status_code == 200
    # What the viewer typed stays in the search box; the answer below it is masked.
    shown = answer.text.split('<form method="get" action="/recipients"', 1)[1]
    shown = shown.split("</form>", 1)[1]
    assert "checkout_form" in shown
    assert phone not in shown
    assert mask_number(phone) in shown


async def test_recipients_waiting_out_their_quiet_hours_are_shown_with_when_they_go(
    console: RunningConsole, page: Page, seeded: tuple[Seeded, Seeded]
) -> None:
    guarded, _ = seeded
    waiting = await console.pool.fetchval(
        "WITH moved AS (UPDATE ledger SET reason = 'quiet_hours',"
        " next_attempt_at = now() + interval '2 hours'"
        " WHERE campaign_id = $1 AND status = 'pending' RETURNING 1)"
        " SELECT count(*) FROM moved",
        guarded.campaign_id,
    )
    assert waiting > 0
    await console.sign_in(page)
    await page.goto(f"{console.url}/campaigns/{guarded.campaign_id}")
    openings = page.locator("#quiet-openings")
    await expect(openings).to_contain_text(f"{waiting} at ", timeout=15_000)
    await expect(page.locator("#reasons")).to_contain_text("quiet_hours")
