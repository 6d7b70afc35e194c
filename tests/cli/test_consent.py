"""Consent provenance end to end (issue 13): `broadcast publish` carries each recipient's
`opt_in_source`, a real `python -m consumer` (intake and dispatcher, against the
sandbox) keeps it on the ledger row and sends, and `broadcast recipients --csv` says,
per recipient, which message went out on which opt-in.
"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import asyncpg
import pytest

from cli.errors import OK
from sandbox.config import Account, RuntimeConfig
from tests.children import Child, stop_all
from tests.cli.conftest import new_phone, run_cli
from tests.system.conftest import SystemFactory, new_sender, system  # noqa: F401 - fixture
from tests.system.harness import System, eventually

pytestmark = pytest.mark.timeout(180)

TEMPLATE = [
    "--template",
    "promo_flash_sale",
    "--language",
    "id_ID",
    "--body-param",
    "{{first_name}}",
]
OPTED = "2026-01-05T10:00:00+00:00"
DEFAULT_SOURCE = "crm:import-2026-11"


def cli_env(running: System) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": running.bootstrap,
        "DATABASE_URL": running.database_url,
        "KIRIM_BASE_URL": running.sandbox.api_url,
        "REQUESTS_TOPIC": running.requests_topic,
        "REQUESTS_DLQ_TOPIC": running.dlq_topic,
        "BROADCAST_TIMEOUT": "10",
    }


async def settled(pool: asyncpg.Pool, campaigns: list[uuid.UUID], recipients: int) -> bool:
    """Every recipient stored, and none still pending (each sent or skipped)."""
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM ledger WHERE campaign_id = ANY($1::uuid[])"
        " GROUP BY status",
        campaigns,
    )
    counts = {r["status"]: r["n"] for r in rows}
    return sum(counts.values()) == recipients and "pending" not in counts


async def test_each_send_names_the_opt_in_it_relied_on(
    system: SystemFactory,  # noqa: F811 - the fixture imported above
    db_pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    sender = new_sender()
    config = RuntimeConfig(accounts={sender: Account(messaging_tier=100_000)})
    form, crm, never = new_phone(), new_phone(), new_phone()
    # A file: a source per row, an empty cell (the --opt-in-source default fills it), a row
    # with no opt-in at all (skipped, its source kept for the record).
    recipients = tmp_path / "customers.csv"
    recipients.write_text(
        "phone,opted_in_at,opt_in_source,first_name\n"
        f"{form},{OPTED},checkout_form,Budi\n"
        f"{crm},{OPTED},,Sari\n"
        f"{never},,web_form,Tono\n"
    )
    children: list[Child] = []
    async with system(config, [sender]) as sys_:
        env = cli_env(sys_)
        from_file = uuid.uuid4()
        published = await run_cli(
            [
                "publish",
                str(recipients),
                *TEMPLATE,
                "--sender",
                sender,
                "--campaign-id",
                str(from_file),
                "--opt-in-source",
                DEFAULT_SOURCE,
                "--json",
            ],
            env,
        )
        assert published.code == OK, published.err
        assert published.json()["opt_in_source"] == {"recipients": 3, "default": DEFAULT_SOURCE}

        # A query: the column is optional there too; NULL is "not said".
        table = f"audience_{uuid.uuid4().hex[:8]}"
        query_phones = [new_phone(), new_phone()]
        await db_pool.execute(
            f"CREATE TABLE {table} (id int, phone text, opted_in_at timestamptz,"
            " opt_in_source text, first_name text)"
        )
        await db_pool.executemany(
            f"INSERT INTO {table} VALUES ($1, $2, $3::text::timestamptz, $4, 'Ani')",
            [(0, query_phones[0], OPTED, "app:settings"), (1, query_phones[1], OPTED, None)],
        )
        from_query = uuid.uuid4()
        queried = await run_cli(
            [
                "publish",
                "--from-query",
                f"SELECT phone, opted_in_at, opt_in_source, first_name FROM {table} ORDER BY id",
                *TEMPLATE,
                "--sender",
                sender,
                "--campaign-id",
                str(from_query),
            ],
            env,
        )
        assert queried.code == OK, queried.err
        assert "consent     1 of 2 name their opt-in source" in queried.out

        try:
            consumer, _ = await sys_.start_consumer("consumer")
            children.append(consumer)
            await eventually(lambda: settled(db_pool, [from_file, from_query], 5), within=90)
        except BaseException:
            for child in children:
                print(child.describe())
            raise
        finally:
            await stop_all(children)

        exported = await run_cli(["recipients", str(from_file), "--csv", "-", "--show-phones"], env)
        assert exported.code == OK, exported.err
        rows = {r["phone"]: r for r in csv.DictReader(io.StringIO(exported.out))}
        assert set(rows) == {form, crm, never}
        for phone, source in ((form, "checkout_form"), (crm, DEFAULT_SOURCE)):
            sent = rows[phone]
            assert (sent["ledger_status"], sent["status"]) == ("queued", "queued")
            assert sent["message_id"].startswith("msg_")
            assert sent["queued_at"]
            assert (sent["opted_in_at"], sent["opt_in_source"]) == (OPTED, source)
        skipped = rows[never]
        assert (skipped["status"], skipped["reason"], skipped["message_id"]) == (
            "skipped",
            "not_opted_in",
            "",
        )
        assert (skipped["opted_in_at"], skipped["opt_in_source"]) == ("", "web_form")

        by_query = await run_cli(
            ["recipients", str(from_query), "--csv", "-", "--show-phones"], env
        )
        sources = {
            r["phone"]: (r["ledger_status"], r["opted_in_at"], r["opt_in_source"])
            for r in csv.DictReader(io.StringIO(by_query.out))
        }
        assert sources == {
            query_phones[0]: ("queued", OPTED, "app:settings"),
            query_phones[1]: ("queued", OPTED, ""),
        }
        # The ledger holds what the export shows: nothing is derived on the way out.
        stored = await db_pool.fetch(
            "SELECT phone, opted_in_at, opt_in_source FROM ledger WHERE campaign_id = $1",
            from_file,
        )
        assert {r["phone"]: r["opt_in_source"] for r in stored} == {
            form: "checkout_form",
            crm: DEFAULT_SOURCE,
            never: "web_form",
        }
