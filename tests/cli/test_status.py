"""`broadcast status [--watch]` against seeded campaigns in the real read model."""

from __future__ import annotations

import asyncio
import io
import uuid

import asyncpg

from cli.errors import NOT_FOUND, OK, UNAVAILABLE, USAGE
from cli.output import Console
from cli.settings import CliSettings
from cli.status import watch
from devstack.procs import free_port
from tests.cli.conftest import Row, new_message_id, new_phone, run_cli, seed


async def test_unknown_campaign_is_not_found(cli_env: dict[str, str]) -> None:
    campaign = uuid.uuid4()
    result = await run_cli(["status", str(campaign)], cli_env)
    assert result.code == NOT_FOUND
    assert result.err == f"broadcast: campaign {campaign} not found\n"
    as_json = await run_cli(["status", str(campaign), "--json"], cli_env)
    assert as_json.json()["error"] == {
        "code": "not_found",
        "message": f"campaign {campaign} not found",
        "exit_code": NOT_FOUND,
        "campaign_id": str(campaign),
    }
    assert (await run_cli(["status", "not-a-uuid"], cli_env)).code == USAGE


async def test_the_progress_table_and_reasons(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    delivered = new_message_id()
    campaign = await seed(
        db_pool,
        [
            Row(new_phone()),
            Row(new_phone(), reason="deferred_quota"),
            Row(new_phone(), "queued", message_id=delivered, seen=("sent", "delivered")),
            Row(new_phone(), "skipped", reason="invalid_phone"),
        ],
        state="stopped",
        state_reason="template_paused",
    )
    result = await run_cli(["status", str(campaign)], cli_env)
    assert result.code == OK
    assert f"campaign  {campaign}" in result.out
    assert "state     stopped (template_paused)" in result.out
    assert "chunks    1/1 received   recipients 4   in progress 2   finished no" in result.out
    assert "  pending        2  50.00%" in result.out
    assert "  delivered      1  25.00%" in result.out
    # A stopped campaign's pending rows read as paused in the view.
    assert "  pending: paused 2" in result.out
    assert "  skipped: invalid_phone 1" in result.out

    report = (await run_cli(["status", str(campaign), "--json"], cli_env)).json()
    assert report["state"] == "stopped"
    assert report["progress"] == [
        {"status": "pending", "count": 2, "pct": 50.0},
        {"status": "delivered", "count": 1, "pct": 25.0},
        {"status": "skipped", "count": 1, "pct": 25.0},
    ]
    assert (report["recipients"], report["in_progress"], report["finished"]) == (4, 2, False)


async def test_watch_in_a_log_prints_a_line_per_refresh_and_ends_when_finished(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    phones = [new_phone() for _ in range(4)]
    campaign = await seed(db_pool, [Row(p) for p in phones], chunk_count=2, chunks_received=1)
    out, err = io.StringIO(), io.StringIO()
    settings = CliSettings.from_env(cli_env)
    task = asyncio.create_task(watch(settings, Console(out, err), campaign, 0.05))

    async def finish(count: int) -> None:
        await db_pool.execute(
            "UPDATE ledger SET status = 'skipped', reason = 'cancelled' "
            "WHERE campaign_id = $1 AND phone = ANY($2::text[])",
            campaign,
            phones[:count],
        )

    await asyncio.sleep(0.3)
    await finish(2)
    await asyncio.sleep(0.3)
    await finish(4)
    await asyncio.sleep(0.3)
    assert not task.done(), "terminal rows but a chunk is missing: not finished yet"
    await db_pool.execute(
        "INSERT INTO campaign_chunks (campaign_id, chunk_index, recipient_count) VALUES ($1, 1, 0)",
        campaign,
    )
    final = await asyncio.wait_for(task, 10)
    assert final.snapshot.finished
    lines = out.getvalue().splitlines()
    assert "\x1b[" not in out.getvalue()  # no cursor movement in a log
    progress_lines = [line for line in lines if f" {campaign} " in line]
    assert "0.0% done 0/4" in progress_lines[0]
    assert any("50.0% done 2/4" in line for line in progress_lines)
    assert any("100.0% done 4/4 chunks 1/2" in line for line in progress_lines)
    assert progress_lines[-1].endswith("done 4/4 chunks 2/2 | skipped 4 | ETA done")
    # At the end, the full table once.
    assert "finished yes" in out.getvalue()
    assert lines[-1] == "  skipped: cancelled 4"


async def test_watch_on_a_terminal_redraws_in_place(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    phone = new_phone()
    campaign = await seed(db_pool, [Row(phone)])
    out = Tty()
    task = asyncio.create_task(
        watch(CliSettings.from_env(cli_env), Console(out, io.StringIO()), campaign, 0.05)
    )
    await asyncio.sleep(0.3)
    await db_pool.execute("UPDATE ledger SET status = 'failed' WHERE campaign_id = $1", campaign)
    await asyncio.wait_for(task, 10)
    text = out.getvalue()
    assert "\x1b[" in text
    assert "F\x1b[J" in text
    last = text.rstrip().splitlines()[-1].split()
    assert last == ["failed", "1", "100.00%", "████████████████████"]


async def test_watch_json_emits_one_object_per_refresh(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    campaign = await seed(db_pool, [Row(new_phone(), "skipped", reason="duplicate")])
    result = await run_cli(["status", str(campaign), "--watch", "--json"], cli_env)
    assert result.code == OK
    assert result.json()["finished"] is True
    assert result.json()["eta_seconds"] == 0.0


async def test_watch_waits_for_a_campaign_to_appear_then_gives_up(cli_env: dict[str, str]) -> None:
    result = await run_cli(
        ["status", str(uuid.uuid4()), "--watch", "--timeout", "1", "--interval", "0.1"], cli_env
    )
    assert result.code == NOT_FOUND
    assert "waiting for campaign" in result.err
    assert "not found (waited 1s)" in result.err


async def test_postgres_down_is_unavailable(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": f"postgresql://x@127.0.0.1:{free_port()}/none"}
    result = await run_cli(["status", str(uuid.uuid4())], env)
    assert result.code == UNAVAILABLE
    assert result.err.startswith("broadcast: PostgreSQL unreachable at postgresql://127.0.0.1:")
    assert result.err.count("\n") == 1
