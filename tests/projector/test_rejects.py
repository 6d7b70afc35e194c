"""Status records PostgreSQL cannot take, among good ones, against the real broker and
database: the good ones are projected, the bad ones kept in `status_rejects` with why,
every offset committed, the projector alive, and a rebuild equal to the live projection.

It adds a CHECK constraint (a refusal nobody foresaw, as an operator might add one), so it
runs in a database of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from typing import Any

from prometheus_client import REGISTRY

from projector.fold import fold
from projector.rebuild import rebuild
from projector.records import updates_of
from projector.service import run
from runtime.db import create_pool
from tests.conftest import MakeTopic
from tests.projector.conftest import STATUS_HEADERS, Headers, produce, projector_settings
from tests.projector.test_loop import committed, lifecycle, record_of
from tests.projector.test_rebuild import dump, own_database
from tests.projector.test_store import stored_row

__all__ = ["own_database"]  # the fixture, used by name

T = 1_700_000_000


def rejected(reason: str) -> float:
    sample = REGISTRY.get_sample_value(
        "broadcast_projector_rejected_records_total", {"reason": reason}
    )
    return sample or 0.0


def hostile(message_id: str, status: dict[str, Any], kirim_error: Any = None) -> bytes:
    entry = {"id": "wamid." + message_id, "recipient_id": "628111222333", **status}
    kirim: dict[str, Any] = {"message_id": message_id, "phone_number_id": "106540352242922"}
    if kirim_error is not None:
        kirim["error"] = kirim_error
    return json.dumps(
        {"entry": [{"changes": [{"value": {"statuses": [entry]}}]}], "kirim": kirim}
    ).encode()


async def test_refused_records_are_set_aside_and_the_rest_is_projected(
    kafka_bootstrap: str, make_topic: MakeTopic, own_database: str
) -> None:
    topic = await make_topic("status")
    rng = random.Random(41)
    events = [e for i in range(60) for e in lifecycle(f"msg_{i:03d}", f"62811{i:07d}", rng)]
    good = [record_of(event) for event in events]
    cleaned: list[tuple[bytes | None, bytes | None, Headers]] = [
        # NUL in the error message and the recipient id: stored with U+FFFD.
        (
            b"msg_nul",
            hostile(
                "msg_nul",
                {
                    "status": "failed",
                    "timestamp": str(T),
                    "recipient_id": "62811\u0000",
                    "errors": [{"code": 1, "message": "bad\u0000text"}],
                },
                {"code": "x"},
            ),
            STATUS_HEADERS,
        ),
        # A provider code beyond int4: the failure is kept, the code dropped.
        (
            b"msg_code",
            hostile(
                "msg_code",
                {"status": "failed", "timestamp": str(T)},
                {"code": "x", "provider_code": 2**40},
            ),
            STATUS_HEADERS,
        ),
    ]
    out_of_range = hostile("msg_time", {"status": "sent", "timestamp": 99_999_999_999_999})
    refused = hostile(
        "msg_refused", {"status": "failed", "timestamp": str(T)}, {"code": "refuse_me"}
    )
    bad: list[tuple[bytes | None, bytes | None, Headers]] = [
        (b"msg_time", out_of_range, STATUS_HEADERS),
        (b"msg_refused", refused, STATUS_HEADERS),
    ]
    stream = good + cleaned + bad
    rng.shuffle(stream)
    await produce(kafka_bootstrap, topic, stream)

    pool = await create_pool(own_database)
    try:
        await pool.execute(
            "ALTER TABLE message_statuses ADD CONSTRAINT test_refuse "
            "CHECK (error_code IS DISTINCT FROM 'refuse_me')"
        )
        before = {reason: rejected(reason) for reason in ("timestamp_out_of_range",)}
        refused_before = rejected("database_refused")
        settings = projector_settings(kafka_bootstrap, own_database, topic, batch_size=23)
        await asyncio.wait_for(
            run(settings, asyncio.Event(), until_idle=True, serve_metrics=False), 90
        )

        # Every offset committed, the good and cleaned records folded exactly.
        assert await committed(kafka_bootstrap, settings.group_id, topic) == len(stream)
        expected = fold(u for _, value, _ in good + cleaned if value for u in updates_of(value))
        rows = await pool.fetch("SELECT * FROM message_statuses")
        assert {row["message_id"]: stored_row(row) for row in rows} == expected
        assert expected["msg_nul"].recipient_id == "62811\ufffd"
        assert expected["msg_nul"].error_message == "bad\ufffdtext"
        assert (expected["msg_code"].error_code, expected["msg_code"].provider_code) == ("x", None)

        rejects = await pool.fetch("SELECT * FROM status_rejects ORDER BY message_key")
        assert [(r["message_key"], r["raw_value"], r["reason"]) for r in rejects] == [
            (b"msg_refused", refused, "database_refused"),
            (b"msg_time", out_of_range, "timestamp_out_of_range"),
        ]
        assert rejects[0]["sqlstate"] == "23514"
        assert "test_refuse" in rejects[0]["detail"]
        assert rejects[1]["sqlstate"] is None
        assert rejected("timestamp_out_of_range") - before["timestamp_out_of_range"] == 1
        assert rejected("database_refused") - refused_before == 1
        # The reconciler's backlog: each stored failure once, none for the refused record.
        failures = await pool.fetch("SELECT * FROM status_failures ORDER BY seq")
        assert sorted(r["message_id"] for r in failures) == sorted(
            message_id for message_id, row in expected.items() if row.failed_at is not None
        )

        # A full replay rebuilds the same projection and records each reject once.
        live = await dump(pool)
        report = await rebuild(dataclasses.replace(settings, rebuild_batch_size=31))
        assert report.rejected == 2
        assert await dump(pool) == live
        again = await pool.fetch("SELECT * FROM status_rejects ORDER BY message_key")
        assert again == rejects
        assert await pool.fetch("SELECT * FROM status_failures ORDER BY seq") == failures
        assert rejected("database_refused") - refused_before == 1
    finally:
        await pool.close()
