"""Plans that stay index-backed on a large history (issue 11, docs/design.md "Plans").

A database of its own is seeded in SQL (tests/scale/seed.sql: 2,000,000 ledger rows over
191 campaigns and 20 senders, ~1.8M statuses, most delivered or read, some failed) and
analysed, so the planner sees real statistics. Then every statement of the send path and
of the reconciler (each named query of consumer/dispatch/sql/queries.sql: a new one must
be added here), the status views filtered to one campaign and the queries behind
`broadcast status` and `broadcast failures` are explained, with the parameters the code
passes, both as the custom plan of one execution and as the generic plan a prepared
statement may switch to. No plan may read `ledger`, `message_statuses` or
`status_failures` with a sequential scan: those grow with history, so such a scan makes
a statement's cost grow with it too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cli.database import Q as CLI
from console.store import Q as CONSOLE
from consumer.dispatch.store import Q as DISPATCH
from devstack.postgres import PostgresServer
from runtime.migrate import migrate_url
from runtime.sqlfiles import load_queries

SEED = load_queries(Path(__file__).with_name("seed.sql"))
GROWING = frozenset({"ledger", "message_statuses", "status_failures"})
LEDGER_ROWS = 2_000_000

pytestmark = pytest.mark.timeout(240)


@dataclass(frozen=True, slots=True)
class Facts:
    """Values of the seeded history the statements are explained with."""

    url: str
    live: uuid.UUID  # mid-flight, 10,000 recipients
    big: uuid.UUID  # mid-flight, 100,000 recipients
    finished: uuid.UUID  # 10,000 recipients, all sent
    sender: str  # the live campaign's number
    sender_campaigns: list[uuid.UUID]
    pending: list[str]  # some pending phones of the live campaign
    queued: list[tuple[str, str]]  # (phone, message id) of the finished campaign
    cursor: int
    seq: int


def campaign(number: int) -> uuid.UUID:
    """The seed's campaign ids: md5('campaign:<n>') as a uuid."""
    return uuid.UUID(hashlib.md5(f"campaign:{number}".encode()).hexdigest())


async def facts_of(connection: asyncpg.Connection, url: str) -> Facts:
    live, big, finished = campaign(2), campaign(1), campaign(100)
    sender = await connection.fetchval(
        "SELECT phone_number_id FROM campaigns WHERE campaign_id = $1", live
    )
    return Facts(
        url=url,
        live=live,
        big=big,
        finished=finished,
        sender=sender,
        sender_campaigns=[
            r["campaign_id"]
            for r in await connection.fetch(
                "SELECT campaign_id FROM campaigns WHERE phone_number_id = $1", sender
            )
        ],
        pending=[
            r["phone"]
            for r in await connection.fetch(
                "SELECT phone FROM ledger WHERE campaign_id = $1 AND status = 'pending' LIMIT 200",
                live,
            )
        ],
        queued=[
            (r["phone"], r["message_id"])
            for r in await connection.fetch(
                "SELECT phone, message_id FROM ledger WHERE campaign_id = $1"
                " AND status = 'queued' LIMIT 200",
                finished,
            )
        ],
        cursor=await connection.fetchval("SELECT seq FROM failure_cursor"),
        seq=await connection.fetchval("SELECT max(seq) FROM status_failures"),
    )


@pytest.fixture(scope="module")
async def history(postgres: PostgresServer) -> AsyncIterator[Facts]:
    name = f"plans_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(postgres.ensure_database, name)
    url = postgres.url(name)
    await migrate_url(url)
    connection = await asyncpg.connect(url)
    try:
        started = time.monotonic()
        async with connection.transaction():
            # Seeding only: FK triggers off (the rows are consistent by construction),
            # no WAL flush per commit, room to sort the index builds in memory.
            await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute("SET LOCAL synchronous_commit = off")
            await connection.execute("SET LOCAL maintenance_work_mem = '256MB'")
            for statement in SEED.values():
                await connection.execute(statement)
        await connection.execute("ANALYZE")
        seeded = time.monotonic() - started
        assert await connection.fetchval("SELECT count(*) FROM ledger") == LEDGER_ROWS
        print(f"seeded {LEDGER_ROWS:,} ledger rows in {seeded:.1f}s")
        facts = await facts_of(connection, url)
    finally:
        await connection.close()
    yield facts
    await asyncio.to_thread(postgres.drop_database, name)


def dispatch_arguments(f: Facts) -> dict[str, tuple[Any, ...]]:
    """Each dispatcher statement's arguments, as its store passes them."""
    now = datetime.now(UTC)
    window = now - timedelta(days=1)
    token = uuid.uuid4()
    n = len(f.pending)
    live_ids = [f.live] * n
    done_ids = [f.finished] * len(f.queued)
    done_phones = [phone for phone, _ in f.queued]
    message_ids = [message_id for _, message_id in f.queued]
    none: list[Any] = [None] * n
    return {
        "senders_with_work": (),
        "sender_campaigns": (f.sender,),
        "campaign_states": (f.sender_campaigns,),
        "due_rows": (f.sender_campaigns, 50, now, token),
        "next_due_at": (f.sender_campaigns,),
        "has_pending": (f.sender_campaigns,),
        "lock_budget": (f.sender,),
        "budget_usage": (f.sender, window),
        "budget_known_phones": (f.sender, f.pending, window),
        "budget_freeing_contact": (f.sender, window, 4_000),
        "record_contacts": (f.sender, f.pending, now),
        "claim_rows": (live_ids, f.pending, token, now),
        "defer_rows": (live_ids, f.pending, now),
        "defer_quiet": (live_ids, f.pending, [now] * n),
        "fail_unknown_outcome": (live_ids, f.pending),
        "record_results": (
            live_ids,
            f.pending,
            ["queued"] * n,
            none,
            [f"msg_new_{i}" for i in range(n)],
            [1] * n,
            none,
            [now] * n,
            none,
            none,
            none,
            token,
        ),
        "message_id_holders": (message_ids,),
        "take_message_from_holder": (f.finished, done_phones[0], message_ids[0], "detail"),
        "give_message_to_rightful": (f.live, f.pending[0], message_ids[0], now),
        "release_rows": (live_ids, f.pending, none, token),
        "try_reconcile_lock": (),
        "release_reconcile_lock": (),
        "failure_cursor": (),
        "failure_backlog": (f.cursor, now, 1000),
        "keep_waiting": ([f.seq], [now]),
        "stop_waiting": ([f.seq],),
        "advance_failure_cursor": (f.seq,),
        "watch_failures_of": (message_ids,),
        "delivered_after_failure": (message_ids,),
        "unknown_sightings": (f.sender, [p.removeprefix("+") for p in f.pending]),
        "adopt_messages": (live_ids, f.pending, [f"msg_new_{i}" for i in range(n)]),
        "resend_after_failure": (
            done_ids,
            done_phones,
            message_ids,
            [now] * len(message_ids),
            ["retry_backoff"] * len(message_ids),
            ["whatsapp_upstream_error"] * len(message_ids),
            [None] * len(message_ids),
        ),
        "fail_after_failure": (
            done_ids,
            done_phones,
            message_ids,
            ["recipient_blocked"] * len(message_ids),
            [None] * len(message_ids),
        ),
        "suppress_phones": (f.pending, ["recipient_blocked"] * n),
        "stop_campaign": (f.live, "template_paused"),
        "stop_sender": (f.sender, "payment_required"),
        "resume_sender": (f.sender, ["invalid_api_key"]),
        "sender_state": (f.sender,),
        "hold_sender": (f.sender, now),
        "stopped_senders": (),
        "record_tier": (f.sender, 100_000),
        "undefer_quota": (f.sender, now, 100_000),
        "lift_quota_hold": (f.sender, now),
        "heartbeat": (uuid.uuid4(),),
        "live_instances": (3.0,),
        "forget_instance": (uuid.uuid4(),),
        "try_own_sender": (f.sender,),
        "disown_sender": (f.sender,),
    }


VIEWS = {
    "campaign_recipient_status": "SELECT * FROM campaign_recipient_status WHERE campaign_id = $1",
    "campaign_progress": "SELECT * FROM campaign_progress WHERE campaign_id = $1",
    "campaign_overview": "SELECT * FROM campaign_overview WHERE campaign_id = $1",
}
# `broadcast status`, `broadcast failures` / `retry` and `broadcast recipients`
# (cli/sql/queries.sql).
CLI_STATEMENTS = {
    "campaign_overview": lambda c: (c,),
    "campaign_progress": lambda c: (c,),
    "campaign_reasons": lambda c: (c,),
    "quiet_openings": lambda c: (c,),
    "failure_buckets": lambda c: (c,),
    "failed_rows": lambda c: (c,),
    "requeue_failed": lambda c: (c, ["recipient_blocked", "invalid_phone_number"]),
    # `broadcast recipients`: the whole campaign, streamed (cli/recipients_export.py).
    "campaign_state": lambda c: (c,),
    "recipient_rows": lambda c: (c, None),
}


def sequential_scans(plan: dict[str, Any]) -> list[str]:
    """Relations of `GROWING` that the plan (a node of EXPLAIN's JSON) reads whole."""
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in GROWING:
        found.append(str(plan["Relation Name"]))
    for child in plan.get("Plans", []):
        found.extend(sequential_scans(child))
    return found


def parameters_of(sql: str) -> int:
    return max((int(n) for n in re.findall(r"\$(\d+)", sql)), default=0)


async def plans(connection: asyncpg.Connection, sql: str, args: Sequence[Any]) -> list[Any]:
    """The custom plan (the arguments' own) and the generic plan (any arguments) of `sql`.

    Nothing is executed: EXPLAIN without ANALYZE plans only.
    """
    custom = json.loads(await connection.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))
    name = f"plan_{uuid.uuid4().hex[:8]}"
    await connection.execute(f"PREPARE {name} AS {sql}")
    try:
        async with connection.transaction():
            await connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            nulls = ", ".join(["NULL"] * parameters_of(sql))
            execute = f"EXECUTE {name}({nulls})" if nulls else f"EXECUTE {name}"
            generic = json.loads(await connection.fetchval("EXPLAIN (FORMAT JSON) " + execute))
    finally:
        await connection.execute(f"DEALLOCATE {name}")
    return [custom[0]["Plan"], generic[0]["Plan"]]


async def violations(
    history: Facts, statements: Mapping[str, tuple[str, Sequence[Any]]]
) -> dict[str, list[str]]:
    connection = await asyncpg.connect(history.url)
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
    found: dict[str, list[str]] = {}
    try:
        for name, (sql, args) in statements.items():
            for kind, plan in zip(
                ("custom", "generic"), await plans(connection, sql, args), strict=True
            ):
                scans = sequential_scans(plan)
                if scans:
                    found[f"{name} ({kind})"] = scans
    finally:
        await connection.close()
    return found


def _strip(sql: str) -> str:
    return sql.strip().rstrip(";")


async def test_every_dispatch_statement_is_index_backed(history: Facts) -> None:
    arguments = dispatch_arguments(history)
    # due_rows_plan sets a planner option for due_rows (store.due_rows); nothing to plan.
    explained = set(DISPATCH) - {"due_rows_plan"}
    assert set(arguments) == explained, "every named dispatcher query is explained here"
    statements = {name: (_strip(DISPATCH[name]), args) for name, args in arguments.items()}
    assert await violations(history, statements) == {}


@pytest.mark.parametrize("which", ["live", "big", "finished"])
async def test_status_views_and_cli_for_one_campaign_are_index_backed(
    history: Facts, which: str
) -> None:
    campaign_id: uuid.UUID = getattr(history, which)
    statements: dict[str, tuple[str, Sequence[Any]]] = {
        f"view {name}": (sql, (campaign_id,)) for name, sql in VIEWS.items()
    }
    arguments: dict[str, Callable[[uuid.UUID], tuple[Any, ...]]] = CLI_STATEMENTS
    statements |= {
        f"cli {name}": (_strip(CLI[name]), make(campaign_id)) for name, make in arguments.items()
    }
    assert await violations(history, statements) == {}


def rows_read(plan: dict[str, Any]) -> int:
    """The most rows any node of an EXPLAIN ANALYZE plan produced, over all its loops."""
    own = int(plan.get("Actual Rows", 0)) * int(plan.get("Actual Loops", 1))
    return max([own, *(rows_read(child) for child in plan.get("Plans", []))])


async def test_a_batch_costs_the_same_while_the_statistics_are_stale(history: Facts) -> None:
    """A big campaign arrives and nothing has analyzed the ledger since: the statistics
    say there are no pending rows. The batch statements must still touch about a batch
    of rows, not every pending row of the campaign (found by bench.scale over a 10M-row
    history: seconds per claim). Run for real inside a transaction rolled back after."""
    big, batch = 200_000, 500
    connection = await asyncpg.connect(history.url)
    read: dict[str, int] = {}
    transaction = connection.transaction()
    await transaction.start()
    try:
        fresh = uuid.uuid4()
        await connection.execute(
            "INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id,"
            " template_name, template_language, template_components,"
            " header_fingerprint, chunk_count)"
            " VALUES ($1, $2, $2, 't', 'id', '[]', 'stale', 1)",
            fresh,
            history.sender,
        )
        await connection.execute(
            "INSERT INTO ledger (campaign_id, phone, status, chunk_index)"
            " SELECT $1, '+62899' || lpad(n::text, 8, '0'), 'pending', 0"
            " FROM generate_series(1, $2) AS n",
            fresh,
            big,
        )
        phones = [f"+62899{n:08d}" for n in range(1, batch + 1)]
        ids = [fresh] * batch
        now, token = datetime.now(UTC), uuid.uuid4()
        arguments: dict[str, tuple[Any, ...]] = {
            "due_rows": ([fresh], batch, now, token),
            "claim_rows": (ids, phones, token, now),
            "release_rows": (ids, phones, [None] * batch, token),
            "defer_rows": (ids, phones, now + timedelta(hours=1)),
            "defer_quiet": (ids, phones, [now + timedelta(hours=1)] * batch),
            "fail_unknown_outcome": (ids, phones),
        }
        for name, args in arguments.items():
            for mode in ("force_custom_plan", "force_generic_plan"):
                await connection.execute(f"SET LOCAL plan_cache_mode = {mode}")
                if name == "due_rows":  # as the store runs it (store.due_rows)
                    await connection.execute(DISPATCH["due_rows_plan"])
                explained = await connection.fetchval(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + _strip(DISPATCH[name]), *args
                )
                read[f"{name} ({mode})"] = rows_read(json.loads(explained)[0]["Plan"])
    finally:
        await transaction.rollback()
        await connection.close()
    assert {name: n for name, n in read.items() if n > 4 * batch} == {}


async def test_every_console_statement_is_index_backed(history: Facts) -> None:
    """The console's reads (console/sql/queries.sql) on the same history: a page must
    cost the same whatever the ledger holds besides the campaign it shows."""
    window = datetime.now(UTC) - timedelta(days=1)
    phone = history.pending[0]
    arguments: dict[str, tuple[Any, ...]] = {
        "campaigns_page": (None, 25, 0),
        "campaigns_count": ("active",),
        "campaign": (history.big,),
        "campaign_tally": (history.big,),
        "campaign_throughput": (history.big, 60),
        "sender": (history.sender,),
        "senders": (),
        "quota_used": (f"number:{history.sender}", window),
        "sender_owners": ([history.sender],),
        "recipient_messages": (phone, 100),
        "record_action": ("ana", "operator", "pause", history.big, None, "ok"),
        "campaign_actions": (history.big, 20),
        "recent_actions": (20,),
    }
    assert set(arguments) == set(CONSOLE), "every named console query is explained here"
    statements = {name: (_strip(CONSOLE[name]), args) for name, args in arguments.items()}
    assert await violations(history, statements) == {}
