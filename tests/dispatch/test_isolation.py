"""One recipient's surprise stays that recipient's: duplicate ids, refused rows, crashed parts."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from consumer.dispatch.outcome import without_duplicate_ids
from consumer.dispatch.restart import RestartBackoff, RestartPolicy
from consumer.dispatch.results import ResultWriter
from consumer.dispatch.store import DispatchStore, RowResult
from tests.dispatch.harness import ledger, new_sender_id, phones, seed_campaign

A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def queued(campaign: uuid.UUID, phone: str, message_id: str | None) -> RowResult:
    return RowResult(
        campaign_id=campaign, phone=phone, status="queued", message_id=message_id, attempted_at=1.0
    )


@pytest.mark.parametrize(
    ("results", "holders", "failed"),
    [
        ([queued(A, "+1", "m1")], {}, []),
        # The same recipient recording its own id again (a redelivered result) is fine.
        ([queued(A, "+1", "m1")], {"m1": (A, "+1")}, []),
        ([queued(A, "+1", "m1")], {"m1": (B, "+1")}, [(A, "+1")]),
        ([queued(A, "+1", "m1"), queued(A, "+2", "m1")], {}, [(A, "+2")]),
        ([queued(A, "+1", "m1"), queued(A, "+1", "m1")], {}, []),
        ([queued(A, "+1", None), queued(B, "+2", None)], {}, []),
        (
            [queued(A, "+1", "m1"), queued(B, "+2", "m2"), queued(C, "+3", "m2")],
            {"m1": (C, "+9")},
            [(A, "+1"), (C, "+3")],
        ),
    ],
)
def test_a_message_id_belongs_to_one_recipient(
    results: list[RowResult],
    holders: dict[str, tuple[uuid.UUID, str]],
    failed: list[tuple[uuid.UUID, str]],
) -> None:
    kept, conflicts = without_duplicate_ids(results, holders)
    assert len(kept) == len(results)
    assert [(c.original.campaign_id, c.original.phone) for c in conflicts] == failed
    for conflict in conflicts:
        assert conflict.original.message_id == conflict.message_id
        assert conflict.holder != (conflict.original.campaign_id, conflict.original.phone)
        # One phone in two campaigns: the recipient the API names cannot tell them apart.
        distinct = conflict.original.phone != conflict.holder[1]
        assert conflict.newcomer_is_rightful(conflict.original.phone) is distinct
        assert not conflict.newcomer_is_rightful(conflict.holder[1])
        assert not conflict.newcomer_is_rightful(None)
        result = conflict.failed
        assert (result.status, result.error_code, result.message_id) == (
            "failed",
            "api_anomaly",
            None,
        )
        assert result.error_message is not None
        assert result.error_message.startswith("duplicate_message_id:")
    owners = {(r.message_id, r.campaign_id, r.phone) for r in kept if r.message_id}
    assert len(owners) == len({message_id for message_id, _, _ in owners})


def test_restart_backoff_doubles_caps_and_resets_after_a_healthy_run() -> None:
    backoff = RestartBackoff(
        RestartPolicy(first_seconds=1.0, max_seconds=8.0, healthy_after_seconds=60.0)
    )
    delays = [backoff.failed("s", started_at=t, now=t + 1) for t in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert not backoff.ready("s", now=6.0)
    assert backoff.ready("s", now=6.0 + 8.0)
    assert backoff.ready("other", now=0.0)
    assert backoff.failed("s", started_at=100.0, now=200.0) == 1.0


async def _claimed(pool: asyncpg.Pool, count: int) -> tuple[uuid.UUID, list[str], uuid.UUID]:
    recipients = phones(count)
    campaign = await seed_campaign(pool, new_sender_id(), recipients)
    token = uuid.uuid4()
    await pool.execute("UPDATE ledger SET claim_token = $2 WHERE campaign_id = $1", campaign, token)
    return campaign, recipients, token


async def test_a_reused_message_id_fails_only_its_recipient(db_pool: asyncpg.Pool) -> None:
    first, first_phones, first_token = await _claimed(db_pool, 1)
    store = DispatchStore(db_pool)
    writer = ResultWriter(store, first_token, flush_seconds=0.01)
    writer.add(queued(first, first_phones[0], "msg_REUSED"))
    await writer.flush()

    campaign, recipients, token = await _claimed(db_pool, 4)
    writer = ResultWriter(store, token, flush_seconds=0.01)
    writer.add(queued(campaign, recipients[0], "msg_REUSED"))  # held by the other campaign
    writer.add(queued(campaign, recipients[1], "msg_FRESH"))
    writer.add(queued(campaign, recipients[2], "msg_FRESH"))  # twice in one batch
    writer.add(queued(campaign, recipients[3], "msg_OTHER"))
    await writer.flush()

    rows = {r["phone"]: r for r in await ledger(db_pool, campaign)}
    assert [(rows[p]["status"], rows[p]["message_id"]) for p in recipients] == [
        ("failed", None),
        ("queued", "msg_FRESH"),
        ("failed", None),
        ("queued", "msg_OTHER"),
    ]
    assert rows[recipients[0]]["error_code"] == "api_anomaly"
    assert "duplicate_message_id" in rows[recipients[0]]["error_message"]
    (held,) = await ledger(db_pool, first)
    assert (held["status"], held["message_id"]) == ("queued", "msg_REUSED")


async def test_a_result_the_ledger_refuses_fails_only_its_recipient(db_pool: asyncpg.Pool) -> None:
    campaign, recipients, token = await _claimed(db_pool, 5)
    writer = ResultWriter(DispatchStore(db_pool), token, flush_seconds=0.01)
    for index, phone in enumerate(recipients):
        # PostgreSQL text cannot hold NUL: a value nobody sanitised must not sink the batch.
        message = "bad\x00value" if index == 2 else None
        status = "failed" if index == 2 else "queued"
        writer.add(
            RowResult(
                campaign_id=campaign,
                phone=phone,
                status=status,
                message_id=None if index == 2 else f"msg_{uuid.uuid4().hex}",
                error_code="invalid_phone_number" if index == 2 else None,
                error_message=message,
                attempted_at=1.0,
            )
        )
    await writer.flush()
    rows = {r["phone"]: r for r in await ledger(db_pool, campaign)}
    assert [rows[p]["status"] for p in recipients] == [
        "queued",
        "queued",
        "failed",
        "queued",
        "queued",
    ]
    refused = rows[recipients[2]]
    assert refused["error_code"] == "api_anomaly"
    assert refused["error_message"].startswith("ledger_refused:")
    assert refused["claim_token"] is None


async def test_the_api_says_whose_a_reused_id_is(db_pool: asyncpg.Pool) -> None:
    """The API answered B's message id to A too, and A's result was written first: asked,
    the API says the message is B's, so B takes it and A fails as the anomaly."""
    campaign, (first, second), token = await _claimed(db_pool, 2)

    async def recipient_of(message_id: str) -> str | None:
        return second if message_id == "msg_OF_SECOND" else None

    writer = ResultWriter(DispatchStore(db_pool), token, 0.01, recipient_of=recipient_of)
    writer.add(queued(campaign, first, "msg_OF_SECOND"))
    await writer.flush()
    writer.add(queued(campaign, second, "msg_OF_SECOND"))
    await writer.flush()
    rows = {r["phone"]: r for r in await ledger(db_pool, campaign)}
    assert (rows[second]["status"], rows[second]["message_id"]) == ("queued", "msg_OF_SECOND")
    assert rows[second]["queued_at"] is not None
    assert (rows[first]["status"], rows[first]["error_code"]) == ("failed", "api_anomaly")
    assert rows[first]["message_id"] is None
    assert "another recipient" in rows[first]["error_message"]
