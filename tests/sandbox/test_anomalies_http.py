"""Anomalous answers and delivered-after-failed over HTTP, with the service's kind of client."""

from __future__ import annotations

import re
from typing import Any

import httpx
import msgspec
import pytest

from sandbox.clock import ManualClock
from sandbox.config import ANOMALY_KINDS, parse_config
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from tests.sandbox.conftest import NUMBER_ID, Api, Launch, Receiver
from tests.sandbox.test_webhooks_http import hooks, status_of

MSG_ID = re.compile(r"msg_[0-9A-Z]{26}")
FAILS = "+62800"  # forced to fail in the delivered-after-failed tests


def anomaly(kind: str, **options: Any) -> dict[str, Any]:
    return {"faults": {"anomalies": {"next": 1, "kinds": [kind], **options}}}


async def config_shown(api: Api) -> dict[str, Any]:
    response = await api.client.get(api.sandbox.control_url + "/config")
    shown: dict[str, Any] = response.json()["data"]
    return shown


# (kind, HTTP status, content type prefix, processed)
WIRE = [
    ("missing_id", 200, "application/json", True),
    ("non_json", 200, "text/plain", True),
    ("html", 200, "text/html", True),
    ("oversized", 200, "application/json", True),
    ("unknown_code", 400, "application/json", False),
    ("nul_id", 200, "application/json", True),
]


@pytest.mark.parametrize(("kind", "status", "content_type", "processed"), WIRE)
async def test_each_kind_on_the_wire_is_stored_and_replayed(
    launch: Launch, kind: str, status: int, content_type: str, processed: bool
) -> None:
    api = await launch(anomaly(kind, oversized_bytes=300_000))
    first = await api.send("+628111000001", key="odd")
    assert first.status_code == status
    assert first.headers["content-type"].startswith(content_type)
    assert int(first.headers["content-length"]) == len(first.content)
    for header in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-request-id"):
        assert header in first.headers
    # A retry with the same key and body gets the same odd answer back.
    again = await api.send("+628111000001", key="odd")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["idempotent-replayed"] == "true"

    audit = await api.audit()
    listed = (await api.messages())["data"]
    assert audit["totals"]["accepted_sends"] == (1 if processed else 0)
    assert audit["totals"]["replays"] == 1
    assert audit["totals"]["rejected"] == {}  # injected, not the send's own refusal
    assert audit["anomalies"]["total"] == 1
    assert audit["anomalies"]["by_kind"] == {k: int(k == kind) for k in ANOMALY_KINDS}
    (entry,) = audit["anomalies"]["injected"]
    assert entry["kind"] == kind
    assert entry["status"] == status
    assert (entry["phone_number_id"], entry["to"], entry["idempotency_key"]) == (
        NUMBER_ID,
        "+628111000001",
        "odd",
    )
    assert entry["true_message_id"] == (listed[0]["id"] if processed else None)
    assert [m["idempotency_key"] for m in listed] == (["odd"] if processed else [])
    # Only the first send was odd; the next one is normal.
    normal = await api.send("+628111000002", key="next")
    assert normal.status_code == 200
    assert MSG_ID.fullmatch(normal.json()["data"]["id"])


async def test_missing_id_keeps_the_rest_of_the_message(launch: Launch) -> None:
    api = await launch(anomaly("missing_id"))
    data = (await api.send("+628111000001")).json()["data"]
    assert "id" not in data
    assert (data["object"], data["status"], data["to"]) == ("message", "pending", "+628111000001")


async def test_non_json_and_html_bodies(launch: Launch) -> None:
    api = await launch({"faults": {"anomalies": {"next": 2, "kinds": ["non_json"]}}})
    assert (await api.send("+628111000001")).content == b"OK"
    await api.patch(anomaly("html"))
    page = await api.send("+628111000002")
    assert page.text.lstrip().lower().startswith("<!doctype html>")
    with pytest.raises(ValueError, match="Expecting value"):
        page.json()
    # The non_json countdown was replaced by the patch's; two odd answers in all.
    assert (await api.audit())["anomalies"]["by_kind"]["non_json"] == 1


async def test_oversized_defaults_to_2_mib_of_valid_json(launch: Launch) -> None:
    api = await launch(anomaly("oversized"))
    response = await api.send("+628111000001")
    assert len(response.content) == 2 * 1024 * 1024
    document = response.json()
    assert MSG_ID.fullmatch(document["data"]["id"])
    assert len(document["padding"]) > 2_000_000
    (entry,) = (await api.audit())["anomalies"]["injected"]
    assert entry["answered_id"] == entry["true_message_id"] == document["data"]["id"]


async def test_unknown_code_is_configurable_and_nothing_is_processed(launch: Launch) -> None:
    api = await launch(anomaly("unknown_code", unknown_status=418, unknown_code="brewing"))
    response = await api.send("+628111000001", key="k")
    assert response.status_code == 418
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("brewing", "invalid_request_error")
    assert error["request_id"] == response.headers["x-request-id"]
    assert (await api.messages())["data"] == []


async def test_nul_id_carries_a_json_nul(launch: Launch) -> None:
    api = await launch(anomaly("nul_id"))
    response = await api.send("+628111000001")
    assert b"\\u0000" in response.content
    answered = response.json()["data"]["id"]
    assert "\x00" in answered
    (entry,) = (await api.audit())["anomalies"]["injected"]
    assert entry["answered_id"] == answered
    assert answered.replace("\x00", "") == entry["true_message_id"]
    # The message itself lives under its true id.
    assert (await api.message(entry["true_message_id"]))["to"] == "+628111000001"


async def test_reused_id_answers_an_earlier_messages_id(launch: Launch) -> None:
    api = await launch()
    earlier = (await api.send("+628111000001", key="a")).json()["data"]["id"]
    await api.patch(anomaly("reused_id"))
    odd = await api.send("+628111000002", key="b")
    assert odd.status_code == 200
    assert odd.json()["data"]["id"] == earlier
    assert odd.json()["data"]["to"] == "+628111000002"
    (entry,) = (await api.audit())["anomalies"]["injected"]
    assert entry["kind"] == "reused_id"
    assert entry["answered_id"] == earlier
    assert entry["true_message_id"] not in {None, earlier}
    # Both messages exist under their true ids, each with its own recipient.
    assert (await api.message(earlier))["to"] == "+628111000001"
    assert (await api.message(entry["true_message_id"]))["to"] == "+628111000002"
    replay = await api.send("+628111000002", key="b")
    assert replay.content == odd.content


async def test_reused_id_falls_back_to_missing_id_on_the_first_send(launch: Launch) -> None:
    api = await launch(anomaly("reused_id"))
    data = (await api.send("+628111000001")).json()["data"]
    assert "id" not in data
    (entry,) = (await api.audit())["anomalies"]["injected"]
    assert (entry["kind"], entry["answered_id"]) == ("missing_id", None)


async def test_a_refused_send_is_not_altered_and_not_counted(launch: Launch) -> None:
    api = await launch(anomaly("html"))
    refused = await api.send("0811")  # not E.164: a 400 of the send itself
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_phone_number"
    audit = await api.audit()
    assert audit["anomalies"]["total"] == 0
    assert (await config_shown(api))["faults"]["anomalies"]["next"] == 0  # drawn and void


async def test_the_countdown_is_live_in_the_config_and_a_patch_restarts_it(
    launch: Launch,
) -> None:
    api = await launch({"faults": {"anomalies": {"next": 3, "kinds": ["missing_id"]}}})
    await api.send("+628111000001")
    shown = (await config_shown(api))["faults"]["anomalies"]
    assert shown["next"] == 2
    assert shown["kinds"] == ["missing_id"]
    assert (shown["oversized_bytes"], shown["unknown_status"], shown["unknown_code"]) == (
        2097152,
        400,
        "unexpected_condition",
    )
    await api.patch({"faults": {"server_errors": {"next": 0}}})
    assert (await config_shown(api))["faults"]["anomalies"]["next"] == 2
    await api.patch({"faults": {"anomalies": {"next": 5}}})
    assert (await config_shown(api))["faults"]["anomalies"]["next"] == 5


async def test_a_bad_anomaly_patch_is_refused(launch: Launch) -> None:
    api = await launch()
    response = await api.patch({"faults": {"anomalies": {"kinds": ["teapot"]}}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


async def test_anomalies_never_touch_reads_even_in_scope_all(launch: Launch) -> None:
    api = await launch({"faults": {"scope": "all", "anomalies": {"probability": 1.0}}})
    for path in ("/accounts", "/me"):
        response = await api.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
    assert (await api.audit())["anomalies"]["total"] == 0


async def test_probability_spreads_over_the_kinds_and_the_audit_lists_each(
    launch: Launch,
) -> None:
    api = await launch({"faults": {"anomalies": {"probability": 1.0, "oversized_bytes": 2048}}})
    for n in range(24):
        await api.send(f"+6281110000{n:02d}", key=f"k{n}")
    anomalies = (await api.audit())["anomalies"]
    assert anomalies["total"] == 24 == len(anomalies["injected"])
    assert anomalies["unlisted"] == 0
    assert sum(anomalies["by_kind"].values()) == 24
    assert len([k for k, n in anomalies["by_kind"].items() if n]) >= 4
    assert sorted(e["idempotency_key"] for e in anomalies["injected"]) == sorted(
        f"k{n}" for n in range(24)
    )


async def test_a_processed_anomaly_still_gets_webhooks_under_the_true_id(
    launch: Launch, receiver: Receiver
) -> None:
    config = hooks(receiver)
    config["faults"] = {"anomalies": {"next": 1, "kinds": ["non_json"]}}
    api = await launch(config)
    assert (await api.send("+628111000001")).content == b"OK"
    deliveries = await receiver.wait_for(3)
    (entry,) = (await api.audit())["anomalies"]["injected"]
    assert {d.json["kirim"]["message_id"] for d in deliveries} == {entry["true_message_id"]}


# Delivered after failed (multi-device).


def redelivery(probability: float = 1.0, delay: float = 5.0) -> dict[str, Any]:
    return {
        "outcomes": {"forced": {FAILS: "recipient_not_on_whatsapp"}},
        "lifecycle": {
            "delivered_after_failed_probability": probability,
            "delivered_after_failed_delay_seconds": delay,
        },
    }


async def test_get_shows_failed_then_delivered_and_spends_read_tokens(
    http: httpx.AsyncClient,
) -> None:
    clock = ManualClock()
    config = redelivery() | {"rate_limits": {"write_per_minute": 50, "read_per_minute": 7}}
    settings = SandboxSettings(port=0, config=parse_config(config))
    async with running_sandbox(settings, clock) as sandbox:
        api = Api(sandbox, http)
        sent = await api.send(FAILS + "1112222", key="k")
        assert sent.headers["x-ratelimit-limit"] == "50"
        message_id = sent.json()["data"]["id"]
        seen, remaining = [], []
        # Default delays: failed 0.3 s after the accept; delivered 5 s after that. The
        # steps are short, so the bucket (7/min) refills less than a token meanwhile.
        for step in (0.0, 0.3, 4.9, 0.1, 1.0):
            clock.advance(step)
            response = await api.get(f"/{NUMBER_ID}/messages/{message_id}")
            assert response.status_code == 200
            assert response.headers["x-ratelimit-limit"] == "7"  # the read bucket's
            remaining.append(response.headers["x-ratelimit-remaining"])
            seen.append(response.json()["data"])
        assert [m["status"] for m in seen] == [
            "pending",
            "failed",
            "failed",
            "delivered",
            "delivered",
        ]
        assert remaining == ["6", "5", "4", "3", "2"]
        failed, delivered = seen[1], seen[3]
        assert failed["error"] == {
            "code": "recipient_not_on_whatsapp",
            "message": "Message undeliverable",
            "provider_code": 131026,
        }
        assert delivered["error"] is None
        assert delivered["provider_id"] == failed["provider_id"]
        assert delivered["provider_id"].startswith("wamid.")
        assert seen[0]["provider_id"] is None
        # The write bucket was not touched by the reads; the read bucket runs out at 7.
        for _ in range(2):
            assert (await api.get(f"/{NUMBER_ID}/messages/{message_id}")).status_code == 200
        limited = await api.get(f"/{NUMBER_ID}/messages/{message_id}")
        assert limited.status_code == 429
        assert limited.headers["x-ratelimit-limit"] == "7"
        assert int(limited.headers["retry-after"]) >= 1
        listing = (await api.messages())["data"]
        assert [(m["status"], m["error_code"]) for m in listing] == [("delivered", None)]
        audit = await api.audit()
        assert audit["totals"]["failed"] == {"recipient_not_on_whatsapp": 1}
        redelivered = audit["delivered_after_failed"]
        assert redelivered["total"] == 1
        (entry,) = redelivered["messages"]
        assert entry["message_id"] == message_id
        assert (entry["to"], entry["idempotency_key"], entry["error_code"]) == (
            FAILS + "1112222",
            "k",
            "recipient_not_on_whatsapp",
        )
        assert entry["delivered_at"] - entry["failed_at"] == pytest.approx(5.0)


async def test_a_delivered_webhook_follows_the_failed_one(
    launch: Launch, receiver: Receiver
) -> None:
    config = hooks(receiver) | redelivery(delay=2.0)
    api = await launch(config)
    message_id = (await api.send(FAILS + "1112222")).json()["data"]["id"]
    ok = (await api.send("+628111000001")).json()["data"]["id"]
    deliveries = await receiver.wait_for(5)  # failed, delivered; sent, delivered, read
    mine = [d for d in deliveries if d.json["kirim"]["message_id"] == message_id]
    assert [status_of(d) for d in mine] == ["failed", "delivered"]
    failed, delivered = (d.json["entry"][0]["changes"][0]["value"]["statuses"][0] for d in mine)
    assert failed["id"] == delivered["id"]
    assert mine[0].headers["x-kirim-event-id"] == mine[1].headers["x-kirim-event-id"]
    assert "errors" in failed
    assert "errors" not in delivered
    assert "error" in mine[0].json["kirim"]
    assert "error" not in mine[1].json["kirim"]
    assert int(delivered["timestamp"]) >= int(failed["timestamp"])
    assert (await api.message(message_id))["status"] == "delivered"
    assert (await api.message(ok))["status"] == "read"  # successes are untouched
    audit = await api.audit()
    assert audit["delivered_after_failed"]["total"] == 1
    assert [m["message_id"] for m in audit["delivered_after_failed"]["messages"]] == [message_id]


async def test_delivered_after_failed_is_off_by_default_and_drawn_by_share(
    launch: Launch,
) -> None:
    api = await launch({**redelivery(probability=0.0), "time_scale": 1000.0})
    shown = (await config_shown(api))["lifecycle"]
    assert shown == {
        "delivered_after_failed_probability": 0.0,
        "delivered_after_failed_delay_seconds": 5.0,
    }
    for n in range(8):
        await api.send(f"{FAILS}11100{n:02d}")
    assert (await api.audit())["delivered_after_failed"]["total"] == 0
    await api.patch({"lifecycle": {"delivered_after_failed_probability": 0.5}})
    for n in range(20):
        await api.send(f"{FAILS}22200{n:02d}")
    # The draw hashes (seed, number, to, template, ordinal): fixed for these sends.
    total = (await api.audit())["delivered_after_failed"]["total"]
    assert 4 <= total <= 16


async def test_me_reports_the_configured_read_budget(launch: Launch) -> None:
    api = await launch(
        {"rate_limits": {"plan": "free", "write_per_minute": 60, "read_per_minute": 600}}
    )
    response = await api.get("/me")
    assert response.json()["data"]["rate_limits"] == {
        "tier": "free",
        "write_per_minute": 60,
        "read_per_minute": 600,
    }
    assert response.headers["x-ratelimit-limit"] == "600"


async def test_get_of_an_unknown_message_is_404_and_spends_a_read(launch: Launch) -> None:
    api = await launch({"rate_limits": {"read_per_minute": 5}})
    response = await api.get(f"/{NUMBER_ID}/messages/msg_01HZY0000000000000000000AB")
    assert response.status_code == 404
    error = msgspec.json.decode(response.content)["error"]
    assert (error["code"], error["type"], error["param"]) == (
        "resource_not_found",
        "not_found_error",
        "message_id",
    )
    assert (response.headers["x-ratelimit-limit"], response.headers["x-ratelimit-remaining"]) == (
        "5",
        "4",
    )
