"""Signed status webhooks over loopback, checked with an independent stdlib HMAC."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import re
import socket
import time
from typing import Any

import pytest

from tests.sandbox.conftest import SECRET, Delivery, Launch, Receiver

SECOND_SECRET = "whsec_rotated_in_secret"


def verify(delivery: Delivery, secrets: list[str], header: str = "x-kirim-signature") -> int:
    """The Kirim signature check, written from kirim-api.md: returns `t` or fails."""
    fields = [part.split("=", 1) for part in delivery.headers[header].split(",")]
    timestamps = [value for name, value in fields if name == "t"]
    signatures = [value for name, value in fields if name == "v1"]
    assert len(timestamps) == 1
    signed = timestamps[0].encode() + b"." + delivery.body
    expected = [hmac.new(s.encode("utf-8"), signed, hashlib.sha256).hexdigest() for s in secrets]
    assert any(hmac.compare_digest(e, v) for e in expected for v in signatures)
    return int(timestamps[0])


def hooks(receiver: Receiver, **options: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "time_scale": options.pop("time_scale", 1000.0),
        "webhooks": {"url": receiver.url, "secrets": [SECRET], **options},
    }
    return config


def status_of(delivery: Delivery) -> str:
    status: str = delivery.json["entry"][0]["changes"][0]["value"]["statuses"][0]["status"]
    return status


async def wait_audit(launch_api: Any, counter: str, value: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        audit: dict[str, Any] = await launch_api.audit()
        if audit["webhooks"][counter] >= value or time.monotonic() > deadline:
            assert audit["webhooks"][counter] == value, audit["webhooks"]
            return audit
        await asyncio.sleep(0.02)


async def test_sent_delivered_read_are_signed_and_shaped(
    launch: Launch, receiver: Receiver
) -> None:
    config = hooks(receiver)
    config["webhooks"]["secrets"] = [SECRET, SECOND_SECRET]
    api = await launch(config)
    accepted = (await api.send("+628111222333")).json()["data"]
    deliveries = await receiver.wait_for(3)
    assert sorted(status_of(d) for d in deliveries) == ["delivered", "read", "sent"]
    wamids = set()
    for delivery in deliveries:
        t = verify(delivery, [SECRET])
        verify(delivery, [SECOND_SECRET])  # every active secret signs
        assert delivery.headers["x-kirim-signature"].count("v1=") == 2
        assert abs(time.time() - t) <= 300
        headers = delivery.headers
        assert headers["x-kirim-source"] == "meta"
        assert headers["x-kirim-event"] == "message.status"
        assert headers["x-kirim-attempt"] == "1"
        assert re.fullmatch(r"wbd_[0-9A-Z]{24}", headers["x-kirim-delivery-id"])
        assert headers["content-type"] == "application/json"
        body = delivery.json
        value = body["entry"][0]["changes"][0]["value"]
        status = value["statuses"][0]
        assert headers["x-kirim-event-id"] == status["id"]
        wamids.add(status["id"])
        assert status["recipient_id"] == "628111222333"
        assert re.fullmatch(r"\d{10}", status["timestamp"])
        assert "errors" not in status
        assert value["metadata"]["phone_number_id"] == "106540352242922"
        assert body["kirim"] == {"message_id": accepted["id"], "phone_number_id": "106540352242922"}
    assert len(wamids) == 1  # one event id per message, whatever the status
    sent = await api.message(accepted["id"])
    assert sent["provider_id"] in wamids


async def test_a_failed_status_carries_errors(launch: Launch, receiver: Receiver) -> None:
    config = hooks(receiver)
    config["outcomes"] = {"forced": {"+62800": "recipient_blocked"}}
    api = await launch(config)
    await api.send("+628001234567")
    (delivery,) = await receiver.wait_for(1)
    verify(delivery, [SECRET])
    body = delivery.json
    status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["status"] == "failed"
    assert status["errors"][0]["code"] == 1013
    assert body["kirim"]["error"] == {"code": "recipient_blocked", "provider_code": 1013}


async def test_retries_follow_the_scaled_schedule(launch: Launch, receiver: Receiver) -> None:
    scale = 200.0
    receiver.answer = lambda d: 503 if int(d.headers["x-kirim-attempt"]) < 4 else 200
    config = hooks(receiver, time_scale=scale)
    config["outcomes"] = {"forced": {"+62": "sent"}}
    api = await launch(config)
    await api.send()
    deliveries = await receiver.wait_for(4)
    await wait_audit(api, "succeeded", 1)
    assert [d.headers["x-kirim-attempt"] for d in deliveries] == ["1", "2", "3", "4"]
    assert len({d.headers["x-kirim-delivery-id"] for d in deliveries}) == 4
    assert len({d.headers["x-kirim-event-id"] for d in deliveries}) == 1
    assert len({d.body for d in deliveries}) == 1
    stamps = [verify(d, [SECRET]) for d in deliveries]
    assert stamps == sorted(stamps)
    # Lower bounds only: a busy machine may be late, never early. 10 s, 30 s, 2 min, -20%.
    gaps = [
        later.received_at - earlier.received_at for earlier, later in itertools.pairwise(deliveries)
    ]
    for gap, base in zip(gaps, (10.0, 30.0, 120.0), strict=True):
        assert gap >= base * 0.8 / scale - 0.005
    audit = await api.audit()
    assert (audit["webhooks"]["retried"], audit["webhooks"]["attempts"]) == (3, 4)


async def test_eight_attempts_then_exhausted(launch: Launch, receiver: Receiver) -> None:
    receiver.answer = lambda _: 500
    config = hooks(receiver, time_scale=200_000.0)
    config["outcomes"] = {"forced": {"+62": "sent"}}
    api = await launch(config)
    await api.send()
    await wait_audit(api, "exhausted", 1)
    assert [d.headers["x-kirim-attempt"] for d in receiver.deliveries] == [
        str(n) for n in range(1, 9)
    ]


@pytest.mark.parametrize("status", [400, 401, 404, 410])
async def test_other_4xx_is_final(launch: Launch, receiver: Receiver, status: int) -> None:
    receiver.answer = lambda _: status
    config = hooks(receiver)
    config["outcomes"] = {"forced": {"+62": "sent"}}
    api = await launch(config)
    await api.send()
    audit = await wait_audit(api, "failed_final", 1)
    assert audit["webhooks"]["pending"] == 0
    assert len(receiver.deliveries) == 1


@pytest.mark.parametrize("status", [301, 408, 429, 502])
async def test_retryable_statuses_are_retried(
    launch: Launch, receiver: Receiver, status: int
) -> None:
    receiver.answer = lambda d: status if d.headers["x-kirim-attempt"] == "1" else 204
    config = hooks(receiver, time_scale=10_000.0)
    config["outcomes"] = {"forced": {"+62": "sent"}}
    api = await launch(config)
    await api.send()
    await wait_audit(api, "succeeded", 1)
    assert [d.headers["x-kirim-attempt"] for d in receiver.deliveries] == ["1", "2"]


async def test_network_errors_are_retried(launch: Launch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = {
        "time_scale": 1000.0,
        "outcomes": {"forced": {"+62": "sent"}},
        "webhooks": {"url": f"http://127.0.0.1:{closed_port}/hook", "schedule_seconds": [0, 1, 1]},
    }
    api = await launch(config)
    await api.send()
    audit = await wait_audit(api, "exhausted", 1)
    assert audit["webhooks"]["network_errors"] == 3
    assert audit["webhooks"]["attempts"] == 3


async def test_signature_256_header_option(launch: Launch, receiver: Receiver) -> None:
    api = await launch(hooks(receiver, signature_header="X-Kirim-Signature-256"))
    await api.send()
    deliveries = await receiver.wait_for(3)
    for delivery in deliveries:
        assert "x-kirim-signature" not in delivery.headers
        verify(delivery, [SECRET], header="x-kirim-signature-256")


async def test_duplicates_are_the_same_event_again(launch: Launch, receiver: Receiver) -> None:
    api = await launch(hooks(receiver, duplicate_probability=1.0))
    await api.send()
    deliveries = await receiver.wait_for(6)
    by_status: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        by_status.setdefault(status_of(delivery), []).append(delivery)
    assert {status: len(items) for status, items in by_status.items()} == {
        "sent": 2,
        "delivered": 2,
        "read": 2,
    }
    for first, second in by_status.values():
        assert first.body == second.body
        assert first.headers["x-kirim-delivery-id"] != second.headers["x-kirim-delivery-id"]
    assert (await api.audit())["webhooks"]["duplicates"] == 3


async def test_delivered_can_be_skipped(launch: Launch, receiver: Receiver) -> None:
    api = await launch(hooks(receiver, skip_delivered_probability=1.0))
    await api.send()
    await wait_audit(api, "succeeded", 2)
    assert sorted(status_of(d) for d in receiver.deliveries) == ["read", "sent"]
    assert (await api.audit())["webhooks"]["skipped_delivered"] == 1


async def test_reordering_lets_read_overtake_sent(launch: Launch, receiver: Receiver) -> None:
    config = hooks(receiver, reorder_probability=1.0, reorder_delay_seconds=400.0)
    # 100 ms apart on the wall clock, so concurrent workers cannot swap them by chance.
    config["outcomes"] = {"delays": {"sent": 0.0, "delivered": 100.0, "read": 100.0}}
    api = await launch(config)
    await api.send()
    deliveries = await receiver.wait_for(3)
    assert [status_of(d) for d in deliveries] == ["read", "sent", "delivered"]


async def test_clock_skew_moves_t(launch: Launch, receiver: Receiver) -> None:
    api = await launch(hooks(receiver, clock_skew_seconds=-400.0))
    await api.send()
    (delivery, *_) = await receiver.wait_for(1)
    t = verify(delivery, [SECRET])
    assert time.time() - t > 300  # stale: a bridge must refuse it


async def test_no_url_no_webhooks_and_reset_drops_the_queue(
    launch: Launch, receiver: Receiver
) -> None:
    api = await launch({"webhooks": {"url": ""}})
    await api.send()
    assert (await api.audit())["webhooks"]["events"] == 0
    slow = await launch({"webhooks": {"url": receiver.url}, "outcomes": {"delays": {"sent": 3600}}})
    await slow.send()
    assert (await slow.audit())["webhooks"]["pending"] == 3
    await slow.client.post(slow.sandbox.control_url + "/reset")
    assert (await slow.audit())["webhooks"]["pending"] == 0
    assert receiver.deliveries == []
