"""Every page in a real browser, with real data in PostgreSQL and Kafka; who may do what.

The campaigns are seeded in SQL as the pipeline leaves them (tests/console/seed.py);
the dead letters are real records on a real topic; the senders' tier and quality come
from a real sandbox. Each page is also saved as a screenshot for docs/console.md.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from playwright.async_api import Page, expect

from console.access import SESSION_COOKIE
from sandbox.config import Account, RuntimeConfig
from sandbox.settings import SandboxSettings
from sandbox.testing import RunningSandbox, running_sandbox
from schemas.deadletter import DeadLetter
from tests.conftest import MakeTopic
from tests.console.browser import REPO_ROOT, screenshot
from tests.console.conftest import (
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    RunningConsole,
    running_console,
)
from tests.console.seed import SENDER, Seeded, seed_campaign

pytestmark = pytest.mark.timeout(120)

BIG = 4_000
OTHER_SENDER = "106540352242923"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    config = RuntimeConfig(
        accounts={
            SENDER: Account(messaging_tier=100_000, quality_rating="GREEN"),
            OTHER_SENDER: Account(messaging_tier=1_000, quality_rating="YELLOW"),
        }
    )
    async with running_sandbox(SandboxSettings(port=0, config=config)) as running:
        yield running


@pytest.fixture
async def topics(make_topic: MakeTopic) -> tuple[str, str]:
    return await make_topic("console-requests", partitions=3), await make_topic("console-dlq")


@pytest.fixture
async def seeded(console_database: str) -> AsyncIterator[tuple[Seeded, Seeded]]:
    pool = await asyncpg.create_pool(console_database, min_size=1, max_size=2)
    try:
        big = await seed_campaign(pool, BIG)
        small = await seed_campaign(
            pool, 200, sender=OTHER_SENDER, prefix="813", template="order_update"
        )
        yield big, small
    finally:
        await pool.close()


@pytest.fixture
async def console(
    console_database: str,
    kafka_bootstrap: str,
    topics: tuple[str, str],
    sandbox: RunningSandbox,
    seeded: tuple[Seeded, Seeded],
) -> AsyncIterator[RunningConsole]:
    requests, dlq = topics
    async with running_console(
        console_database,
        kafka_bootstrap,
        requests_topic=requests,
        dlq_topic=dlq,
        kirim_base_url=sandbox.api_url,
    ) as running:
        yield running


async def _dead_letter(bootstrap: str, topic: str, value: bytes, campaign: uuid.UUID) -> None:
    letter = DeadLetter(
        reason="schema_violation",
        detail="recipients[0].phone: expected a string",
        source_topic="broadcast.requests",
        source_partition=1,
        source_offset=42,
        failed_at=datetime.now(UTC),
        service="consumer",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value, key=str(campaign).encode(), headers=letter.to_headers()
        )
    finally:
        await producer.stop()


async def _counted(page: Page, url: str) -> None:
    """Open `url` until the page shows counted figures (snapshots are taken in the
    background; the first look at a campaign only asks for one)."""
    for _ in range(50):
        await page.goto(url)
        if await page.locator("text=counting").count() == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} still counting")


async def test_every_page_renders_real_data(
    console: RunningConsole, page: Page, seeded: tuple[Seeded, Seeded], topics: tuple[str, str]
) -> None:
    big, small = seeded
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await console.sign_in(page)
    assert page.url.endswith("/campaigns")

    # Campaigns: both, newest first, with a progress bar each once counted.
    await _counted(page, console.url + "/campaigns")
    rows = page.locator("#campaigns tbody tr")
    await expect(rows).to_have_count(2)
    assert await rows.nth(0).get_attribute("data-campaign") == str(small.campaign_id)
    await expect(rows.nth(1).locator("svg.bar rect")).to_have_count(7)
    await expect(rows.nth(1)).to_contain_text(f"{BIG:,}")
    await page.click("a[href='/campaigns?state=active']")
    await expect(rows).to_have_count(2)
    await screenshot(page, "campaigns")

    # Campaign: the live figures equal the read model's own view.
    await _counted(page, f"{console.url}/campaigns/{big.campaign_id}")
    progress = {
        r["status"]: r["count"]
        for r in await console.pool.fetch(
            "SELECT status, count FROM campaign_progress WHERE campaign_id = $1", big.campaign_id
        )
    }
    for status, count in progress.items():
        await expect(page.locator(f"b[data-status={status}]")).to_have_text(f"{count:,}")
    await expect(page.locator("#failures tr[data-code=outcome_unknown]")).to_contain_text(
        "may have been sent"
    )
    await expect(page.locator("#failures tr[data-code=rate_limit_exceeded]")).to_contain_text(
        "retry"
    )
    await expect(page.locator("#reasons")).to_contain_text("deferred_quota")
    await expect(page.locator("#tier")).to_contain_text("100,000")
    await expect(page.locator("#quota")).to_contain_text("of 100,000")
    await expect(page.locator("svg.chart rect").first).to_be_attached()
    await screenshot(page, "campaign")

    # Recipients: one phone across campaigns, in full for an operator.
    phone = big.phones[24]  # n = 25: accepted, then read
    await page.goto(console.url + "/recipients")
    await page.fill("input[name=phone]", phone)
    await page.click("form.search button")
    await expect(page.locator("#messages tbody tr")).to_have_count(1)
    await expect(page.locator("#messages")).to_contain_text("read")
    # The opt-in that send relied on (the seed gives n = 25 the CRM import).
    await expect(page.locator("#messages td.opt-in-source")).to_have_text("crm:import-2026-11")
    await expect(page.locator("h2")).to_contain_text(phone)
    await screenshot(page, "recipients")

    # Dead letters: a real record of the DLQ topic, with its reason and source.
    _, dlq = topics
    await _dead_letter(
        console.settings.bootstrap_servers,
        dlq,
        b'{"type": "broadcast.requested", "recipients": [{"phone": 6281234567890}]}',
        big.campaign_id,
    )
    for _ in range(50):
        await page.goto(console.url + "/dead-letters")
        if await page.locator("#dead-letters tbody tr").count():
            break
        await asyncio.sleep(0.2)
    await expect(page.locator("#dead-letters")).to_contain_text("schema_violation")
    await expect(page.locator("#dead-letters")).to_contain_text("broadcast.requests p1 @42")
    await screenshot(page, "dead-letters")

    # Senders: tier and quality from the API, state, owner, quota gauge.
    await page.goto(console.url + "/senders")
    row = page.locator(f"#senders tr[data-sender='{SENDER}']")
    await expect(row).to_contain_text("100,000")
    await expect(row).to_contain_text("GREEN")
    await expect(page.locator(f"#senders tr[data-sender='{OTHER_SENDER}']")).to_contain_text(
        "YELLOW"
    )
    await screenshot(page, "senders")
    assert errors == []


async def test_a_viewer_sees_masked_numbers_and_cannot_act(
    console: RunningConsole, page: Page, seeded: tuple[Seeded, Seeded]
) -> None:
    big, _ = seeded
    await console.sign_in(page, VIEWER_TOKEN)
    await expect(page.locator(".who")).to_contain_text("viewer")
    phone = big.phones[24]
    await page.goto(f"{console.url}/recipients?phone={phone.replace('+', '%2B')}")
    await expect(page.locator("#messages tbody tr")).to_have_count(1)
    # The viewer typed the number; the answer shows it masked.
    shown = (
        await page.locator("main h2").inner_text() + await page.locator("#messages").inner_text()
    )
    assert phone not in shown
    assert phone[:6] + "*****" + phone[-3:] in shown

    await page.goto(f"{console.url}/campaigns/{big.campaign_id}")
    await expect(page.locator("a[data-action]")).to_have_count(0)
    answer = await page.goto(f"{console.url}/campaigns/{big.campaign_id}/pause")
    assert answer is not None
    assert answer.status == 403
    answer = await page.goto(f"{console.url}/campaigns/{big.campaign_id}/failures.csv")
    assert answer is not None
    assert answer.status == 403

    # Even with the session's own CSRF token, a viewer's POST is refused.
    token = await page.locator("form[action='/logout'] input[name=csrf_token]").input_value()
    status = await page.evaluate(
        """async ([url, token]) => (await fetch(url, {method: "POST",
             headers: {"content-type": "application/x-www-form-urlencoded"},
             body: "csrf_token=" + encodeURIComponent(token)})).status""",
        [f"{console.url}/campaigns/{big.campaign_id}/pause", token],
    )
    assert status == 403
    actions = await console.pool.fetchval("SELECT count(*) FROM console_actions")
    assert actions == 0


async def test_no_credential_no_csrf_no_action(
    console: RunningConsole, seeded: tuple[Seeded, Seeded]
) -> None:
    big, _ = seeded
    campaign = f"/campaigns/{big.campaign_id}"
    async with httpx.AsyncClient(base_url=console.url, follow_redirects=False) as http:
        # Nothing without a credential: a browser is sent to sign in, anything else 401.
        page = await http.get("/campaigns", headers={"accept": "text/html"})
        assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Fcampaigns")
        assert (await http.get(campaign + "/live")).status_code == 401
        assert (await http.post(campaign + "/pause")).status_code == 401
        http.cookies.set(SESSION_COOKIE, f"operator|operator|{2**40}|AAAA")
        assert (await http.get("/campaigns")).status_code == 401
        http.cookies.clear()
        # Every answer carries the security headers.
        headers = page.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"

        # A bearer token reads, but never acts: actions need a session and its CSRF token.
        bearer = {"authorization": f"Bearer {OPERATOR_TOKEN}"}
        assert (await http.get(campaign, headers=bearer)).status_code == 200
        assert (await http.post(campaign + "/pause", headers=bearer)).status_code == 403

        signed_in = await http.post("/login", data={"token": OPERATOR_TOKEN, "next": campaign})
        assert signed_in.status_code == 303
        cookie = signed_in.cookies[SESSION_COOKIE]
        assert "httponly" in signed_in.headers["set-cookie"].lower()
        assert "samesite=strict" in signed_in.headers["set-cookie"].lower()
        http.cookies.set(SESSION_COOKIE, cookie)
        no_token = await http.post(campaign + "/pause")
        assert no_token.status_code == 403
        assert "CSRF" in no_token.text
        wrong = await http.post(campaign + "/pause", data={"csrf_token": "x"})
        assert wrong.status_code == 403
        # An open redirect is not offered: only this site's paths.
        away = await http.post("/login", data={"token": OPERATOR_TOKEN, "next": "//evil.test/"})
        assert away.headers["location"] == "/campaigns"
        bad = await http.post("/login", data={"token": "not-the-token-at-all"})
        assert bad.status_code == 401
    assert await console.pool.fetchval("SELECT count(*) FROM console_actions") == 0


async def test_the_failures_csv_is_broadcast_failed_csv(
    console: RunningConsole, seeded: tuple[Seeded, Seeded]
) -> None:
    big, _ = seeded
    async with httpx.AsyncClient(base_url=console.url) as http:
        answer = await http.get(
            f"/campaigns/{big.campaign_id}/failures.csv",
            headers={"authorization": f"Bearer {OPERATOR_TOKEN}"},
        )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "failed",
        str(big.campaign_id),
        "--csv",
        "-",
        env={**os.environ, "DATABASE_URL": console.settings.database_url},
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await cli.communicate()
    assert cli.returncode == 0, err.decode()
    assert answer.content == out
    assert out.count(b"\n") > BIG // 20  # a header and every failed row


async def test_a_corrected_dead_letter_is_republished_and_recorded(
    console: RunningConsole, page: Page, topics: tuple[str, str], seeded: tuple[Seeded, Seeded]
) -> None:
    requests, dlq = topics
    campaign = uuid.uuid4()
    await _dead_letter(
        console.settings.bootstrap_servers, dlq, b'{"type": "broadcast.paused"}', campaign
    )
    await console.sign_in(page)
    for _ in range(50):
        await page.goto(console.url + "/dead-letters")
        if await page.locator("#dead-letters tbody tr").count():
            break
        await asyncio.sleep(0.2)
    await page.click("#dead-letters a:text('open')")
    await expect(page.locator("#republish textarea")).to_have_value('{"type": "broadcast.paused"}')

    # Still invalid: refused with the schema's reason, nothing published.
    await page.fill("#republish textarea", '{"type": "broadcast.paused", "campaign_id": "x"}')
    await page.click("#republish button")
    await expect(page.locator("#problem")).to_contain_text("campaign_id")

    corrected = f'{{"type": "broadcast.paused", "campaign_id": "{campaign}", "reason": "fixed"}}'
    await page.fill("#republish textarea", corrected)
    await page.click("#republish button")
    await expect(page.locator("#outcome")).to_contain_text("ok: broadcast.paused")

    consumer = AIOKafkaConsumer(
        requests,
        bootstrap_servers=console.settings.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        records = [m for messages in batches.values() for m in messages]
    finally:
        await consumer.stop()
    assert [(m.key, m.value) for m in records] == [(str(campaign).encode(), corrected.encode())]
    outcomes = await console.pool.fetch(
        "SELECT action, actor, outcome FROM console_actions ORDER BY action_id"
    )
    assert [(r["action"], r["actor"]) for r in outcomes] == [
        ("republish", "operator"),
        ("republish", "operator"),
    ]
    assert outcomes[0]["outcome"].startswith("refused: ")
    assert outcomes[1]["outcome"].startswith("ok: ")


async def test_retry_retryable_requeues_only_the_retryable_failures(
    console: RunningConsole, page: Page, seeded: tuple[Seeded, Seeded]
) -> None:
    big, _ = seeded

    async def failed_by_code() -> dict[str, int]:
        rows = await console.pool.fetch(
            "SELECT error_code, count(*) AS n FROM ledger WHERE campaign_id = $1"
            " AND status = 'failed' GROUP BY 1",
            big.campaign_id,
        )
        return {r["error_code"]: r["n"] for r in rows}

    before = await failed_by_code()
    await console.sign_in(page, path=f"/campaigns/{big.campaign_id}")
    await page.click("a[data-action=retry]")
    await expect(page.locator("main")).to_contain_text("never the ones that may have been sent")
    await page.click("#confirm button[type=submit]")
    retried = before["rate_limit_exceeded"]
    await expect(page.locator("#outcome")).to_contain_text(f"re-queued {retried:,}")
    after = await failed_by_code()
    # The retryable code is back to pending; the permanent and the in-doubt ones stay.
    assert "rate_limit_exceeded" not in after
    assert after["recipient_blocked"] == before["recipient_blocked"]
    assert after["outcome_unknown"] == before["outcome_unknown"]
    await expect(page.locator("#audit tbody tr").first).to_contain_text("retry")
