"""`broadcast suppression`, `senders` and `projector rebuild` against the real database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from cli.errors import NOT_FOUND, OK, UNAVAILABLE, USAGE
from devstack.postgres import PostgresServer
from devstack.procs import free_port
from runtime.db import create_pool
from runtime.migrate import migrate_url
from tests.cli.conftest import Row, new_message_id, new_phone, run_cli, seed
from tests.conftest import MakeTopic
from tests.projector.conftest import produce


async def test_suppression_add_list_remove(cli_env: dict[str, str], db_pool: asyncpg.Pool) -> None:
    digits = f"{uuid.uuid4().int % 10**7:07d}"
    spaced, e164 = f"+62 812-{digits[:3]}-{digits[3:]}", f"+62812{digits}"
    added = await run_cli(["suppression", "add", spaced, "--reason", "complaint"], cli_env)
    assert added.code == OK
    assert added.out == f"suppressed {e164} (reason complaint, source operator)\n"
    row = await db_pool.fetchrow("SELECT reason, source FROM suppressions WHERE phone = $1", e164)
    assert row is not None
    assert tuple(row) == ("complaint", "operator")

    again = await run_cli(["suppression", "add", e164, "--json"], cli_env)
    assert again.json()["added"] is False
    assert again.json()["entry"]["reason"] == "complaint"

    listed = await run_cli(["suppression", "list", "--limit", "1000", "--json"], cli_env)
    assert e164 in [e["phone"] for e in listed.json()["entries"]]
    assert listed.json()["total"] >= 1
    as_csv = await run_cli(["suppression", "list", "--csv"], cli_env)
    assert as_csv.out.splitlines()[0] == "phone,reason,source,created_at"
    table = await run_cli(["suppression", "list", "--limit", "1"], cli_env)
    assert table.out.splitlines()[0].split() == ["phone", "reason", "source", "created_at"]

    removed = await run_cli(["suppression", "remove", e164], cli_env)
    assert (removed.code, removed.out.startswith(f"removed {e164}")) == (OK, True)
    gone = await run_cli(["suppression", "remove", e164], cli_env)
    assert (gone.code, gone.err) == (
        NOT_FOUND,
        f"broadcast: {e164} is not on the suppression list\n",
    )


@pytest.mark.parametrize("phone", ["0812345678", "+62abc", "+1 555", "+628111222333 ext 5"])
async def test_suppression_refuses_what_is_not_e164(cli_env: dict[str, str], phone: str) -> None:
    result = await run_cli(["suppression", "add", phone], cli_env)
    assert result.code == USAGE
    assert "not a valid international phone number" in result.err


async def test_senders_list_and_resume(cli_env: dict[str, str], db_pool: asyncpg.Pool) -> None:
    stopped = str(uuid.uuid4().int % 10**15).zfill(15)
    await db_pool.execute(
        "INSERT INTO senders (phone_number_id, state, state_reason, tier) "
        "VALUES ($1, 'stopped', 'payment_required', 1000)",
        stopped,
    )
    listed = await run_cli(["senders", "list", "--json"], cli_env)
    mine = [s for s in listed.json()["senders"] if s["phone_number_id"] == stopped]
    assert mine[0]["state"] == "stopped"
    assert mine[0]["state_reason"] == "payment_required"
    assert stopped in (await run_cli(["senders", "list"], cli_env)).out

    resumed = await run_cli(["senders", "resume", stopped], cli_env)
    assert resumed.out == f"sender {stopped} is active again (was stopped: payment_required)\n"
    row = await db_pool.fetchrow(
        "SELECT state, state_reason FROM senders WHERE phone_number_id = $1", stopped
    )
    assert row is not None
    assert tuple(row) == ("active", None)
    again = await run_cli(["senders", "resume", stopped, "--json"], cli_env)
    assert again.json()["resumed"] is False
    assert (await run_cli(["senders", "resume", "999999999999999"], cli_env)).code == NOT_FOUND
    assert (await run_cli(["senders", "resume", "12ab"], cli_env)).code == USAGE


@pytest.fixture
async def own_database(postgres: PostgresServer) -> AsyncIterator[str]:
    """A database of its own: a rebuild replaces every row of message_statuses."""
    name = f"cli_rebuild_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(postgres.ensure_database, name)
    url = postgres.url(name)
    await migrate_url(url)
    yield url
    await asyncio.to_thread(postgres.drop_database, name)


async def test_projector_rebuild_replays_the_status_topic(
    cli_env: dict[str, str], own_database: str, make_topic: MakeTopic
) -> None:
    topic = await make_topic("status", partitions=1)
    message_id = new_message_id()
    body = (
        '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",'
        '"value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"106540352242922"},'
        '"statuses":[{"id":"wamid.X","status":"delivered","timestamp":"1716480010",'
        '"recipient_id":"628111222333"}]}}]}],"kirim":{"message_id":"' + message_id + '",'
        '"phone_number_id":"106540352242922"}}'
    ).encode()
    await produce(
        cli_env["KAFKA_BOOTSTRAP_SERVERS"],
        topic,
        [(message_id.encode(), body, [("X-Kirim-Event", b"message.status")])],
    )
    pool = await create_pool(own_database, min_size=1, max_size=2)
    try:
        stale = await seed(
            pool, [Row(new_phone(), "queued", message_id="msg_STALE", seen=("sent",))]
        )
        env = {**cli_env, "DATABASE_URL": own_database, "STATUS_TOPIC": topic}
        result = await run_cli(["projector", "rebuild", "--json"], env)
        assert result.code == OK, result.err
        report = result.json()
        assert (report["events"], report["rows"]) == (1, 1)
        ids = [r["message_id"] for r in await pool.fetch("SELECT message_id FROM message_statuses")]
        assert ids == [message_id]
        assert stale  # its status row was replaced by the replay
        text = await run_cli(["projector", "rebuild"], env)
        assert text.out.startswith(f"rebuilt message_statuses from {topic}: 1 events")
    finally:
        await pool.close()


async def test_projector_rebuild_with_postgres_down(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": f"postgresql://x@127.0.0.1:{free_port()}/none"}
    result = await run_cli(["projector", "rebuild", "--timeout", "2"], env)
    assert result.code == UNAVAILABLE
    assert result.err.startswith("broadcast: PostgreSQL unreachable")
