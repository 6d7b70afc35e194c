"""Webhook signing, bodies and delivery policy; faults and ids; all without HTTP."""

from __future__ import annotations

import hashlib
import hmac
import random
import re

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.catalog import FAILURES
from sandbox.config import DEFAULT_RETRY_SCHEDULE, Faults, Webhooks
from sandbox.delivery import classify, plan_statuses, retry_delay
from sandbox.duequeue import DueQueue
from sandbox.faults import FaultCounters, plan_faults
from sandbox.identifiers import delivery_id, message_id, request_id, wamid
from sandbox.payload import StatusEvent, status_body
from sandbox.signature import sign


@settings(deadline=None)
@given(
    st.binary(max_size=200),
    st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=3),
    st.integers(0, 2**40),
)
def test_signature_matches_an_independent_hmac(body: bytes, secrets: list[str], t: int) -> None:
    header = sign(body, secrets, t)
    parts = header.split(",")
    assert parts[0] == f"t={t}"
    expected = [
        hmac.new(s.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        for s in secrets
    ]
    assert parts[1:] == [f"v1={digest}" for digest in expected]


def event(status: str, failure: str | None = None) -> StatusEvent:
    return StatusEvent(
        message_id="msg_01HZY0000000000000000000AB",
        phone_number_id="106540352242922",
        display_phone_number="6281100000001",
        waba_id="102290129340398",
        wamid="wamid.HBgNabc",
        recipient_id="628111222333",
        status=status,
        timestamp=1716480010,
        category="MARKETING",
        failure=FAILURES[failure] if failure else None,
    )


def test_delivered_body_has_the_documented_shape() -> None:
    body = msgspec.json.decode(status_body(event("delivered")))
    assert body["object"] == "whatsapp_business_account"
    (entry,) = body["entry"]
    (change,) = entry["changes"]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {
        "display_phone_number": "6281100000001",
        "phone_number_id": "106540352242922",
    }
    (status,) = value["statuses"]
    assert status["id"] == "wamid.HBgNabc"
    assert status["status"] == "delivered"
    assert status["timestamp"] == "1716480010"
    assert status["recipient_id"] == "628111222333"
    assert "errors" not in status
    assert body["kirim"] == {
        "message_id": "msg_01HZY0000000000000000000AB",
        "phone_number_id": "106540352242922",
    }


def test_failed_body_carries_meta_errors_and_the_kirim_error() -> None:
    body = msgspec.json.decode(status_body(event("failed", "recipient_not_on_whatsapp")))
    status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    (error,) = status["errors"]
    assert error["code"] == 131026
    assert set(error) == {"code", "title", "message", "error_data"}
    assert body["kirim"]["error"] == {"code": "recipient_not_on_whatsapp", "provider_code": 131026}


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "done"),
        (202, "done"),
        (204, "done"),
        (301, "retry"),
        (302, "retry"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (None, "retry"),
        (400, "final"),
        (401, "final"),
        (403, "final"),
        (404, "final"),
        (410, "final"),
        (422, "final"),
    ],
)
def test_classify(status: int | None, verdict: str) -> None:
    assert classify(status) == verdict


@settings(deadline=None)
@given(st.integers(0, 10), st.floats(0, 0.5), st.integers())
def test_retry_delays_follow_the_schedule_within_jitter(
    made: int, jitter: float, seed: int
) -> None:
    delay = retry_delay(DEFAULT_RETRY_SCHEDULE, made, jitter, random.Random(seed))
    if made >= 8:
        assert delay is None
    else:
        base = DEFAULT_RETRY_SCHEDULE[made]
        assert delay is not None
        assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


STEPS = (("sent", 10.0), ("delivered", 11.0), ("read", 12.0))


def test_plain_plan_is_one_delivery_per_status() -> None:
    planned = plan_statuses(STEPS, Webhooks(), 1.0, random.Random(0))
    assert [(p.status, p.due) for p in planned] == list(STEPS)


def test_skip_delivered_only_when_read_follows() -> None:
    options = Webhooks(skip_delivered_probability=1.0)
    assert [p.status for p in plan_statuses(STEPS, options, 1.0, random.Random(0))] == [
        "sent",
        "read",
    ]
    no_read = STEPS[:2]
    assert [p.status for p in plan_statuses(no_read, options, 1.0, random.Random(0))] == [
        "sent",
        "delivered",
    ]


def test_reordering_holds_earlier_statuses_back() -> None:
    options = Webhooks(reorder_probability=1.0, reorder_delay_seconds=10.0)
    planned = plan_statuses(STEPS, options, 2.0, random.Random(0))
    assert [(p.status, p.due, p.reordered) for p in planned] == [
        ("sent", 15.0, True),
        ("delivered", 16.0, True),
        ("read", 12.0, False),
    ]


def test_duplicates_follow_their_original() -> None:
    planned = plan_statuses(STEPS, Webhooks(duplicate_probability=1.0), 1.0, random.Random(0))
    assert [(p.status, p.duplicate) for p in planned] == [
        ("sent", False),
        ("sent", True),
        ("delivered", False),
        ("delivered", True),
        ("read", False),
        ("read", True),
    ]


def test_due_queue_hands_out_in_due_order() -> None:
    queue: DueQueue[str] = DueQueue()
    for due, item in [(3.0, "c"), (1.0, "a"), (2.0, "b"), (1.0, "a2")]:
        queue.push(due, item)
    assert queue.next_due() == 1.0
    assert queue.pop_due(1.5) == ["a", "a2"]
    assert queue.pop_due(10.0) == ["b", "c"]
    assert queue.next_due() is None


def test_fault_countdowns_fire_then_stop() -> None:
    faults = msgspec.convert(
        {"server_errors": {"next": 2}, "late_answers": {"next": 1, "delay_seconds": 3}}, Faults
    )
    counters = FaultCounters(server_errors=2, late_answers=1)
    rng = random.Random(0)
    plans = []
    for _ in range(4):
        fault_plan, counters = plan_faults(faults, counters, rng)
        plans.append(fault_plan)
    assert [p.server_error for p in plans] == [
        (503, "internal_error"),
        (503, "internal_error"),
        None,
        None,
    ]
    assert [p.late for p in plans] == [0.0, 0.0, 3.0, 0.0]
    assert counters == FaultCounters()


@pytest.mark.parametrize(
    ("after", "before_flag", "after_flag"), [(False, True, False), (True, False, True)]
)
def test_dropped_connections_before_or_after_processing(
    after: bool, before_flag: bool, after_flag: bool
) -> None:
    faults = msgspec.convert(
        {"dropped_connections": {"probability": 1.0, "after_processing": after}}, Faults
    )
    fault_plan, _ = plan_faults(faults, FaultCounters(), random.Random(0))
    assert (fault_plan.drop_before, fault_plan.drop_after) == (before_flag, after_flag)


@settings(deadline=None)
@given(st.integers())
def test_latency_stays_within_its_distribution(seed: int) -> None:
    faults = msgspec.convert(
        {"latency": {"fixed_ms": 5, "jitter": "uniform", "jitter_ms": 10}}, Faults
    )
    fault_plan, _ = plan_faults(faults, FaultCounters(), random.Random(seed))
    assert 0.005 <= fault_plan.latency <= 0.015


def test_identifier_formats() -> None:
    ids = [message_id(1_700_000_000.0 + n) for n in range(50)]
    assert all(re.fullmatch(r"msg_[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)
    assert ids == sorted(ids)  # time-ordered
    assert re.fullmatch(r"req_[0-9A-HJKMNP-TV-Z]{24}", request_id())
    assert re.fullmatch(r"wbd_[0-9A-HJKMNP-TV-Z]{24}", delivery_id())
    assert wamid(ids[0], "628111222333") == wamid(ids[0], "628111222333")
    assert wamid(ids[0], "628111222333").startswith("wamid.")


@pytest.mark.parametrize(
    ("status", "failure", "error_code", "provider_code"),
    [
        ("sent", None, None, None),
        ("read", None, None, None),
        ("failed", "quota_exceeded", "quota_exceeded", 131048),
    ],
)
def test_the_projects_webhook_reader_understands_the_bodies(
    status: str, failure: str | None, error_code: str | None, provider_code: int | None
) -> None:
    from schemas.webhooks import decode_status_webhook, status_updates  # noqa: PLC0415

    (update,) = status_updates(decode_status_webhook(status_body(event(status, failure))))
    assert update.message_id == "msg_01HZY0000000000000000000AB"
    assert update.wamid == "wamid.HBgNabc"
    assert update.phone_number_id == "106540352242922"
    assert (update.status, update.occurred_at, update.recipient_id) == (
        status,
        1716480010,
        "628111222333",
    )
    assert (update.error_code, update.provider_code) == (error_code, provider_code)
