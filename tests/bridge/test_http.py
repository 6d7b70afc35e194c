"""The bridge over real HTTP on loopback, against the real broker: answers and what is stored."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

from tests.bridge.conftest import RunningBridge, bridge_settings, running_bridge
from tests.bridge.kirim import OLD_SECRET, SECRET, signed_headers, status_body
from tests.conftest import MakeTopic
from tests.topics import end_offsets, read_all
from webhook_bridge.verify import sign


def a_body(message_id: str | None = None, wamid: str | None = None) -> bytes:
    return status_body(
        message_id=message_id if message_id is not None else "msg_" + secrets.token_hex(8),
        wamid=wamid or "wamid." + secrets.token_hex(8),
        status="delivered",
        timestamp=int(time.time()),
    )


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes | AsyncIterator[bytes],
    headers: dict[str, str],
) -> int:
    async with http.post(url, data=body, headers=headers) as response:
        await response.read()
        return response.status


Case = Callable[[int], Awaitable[tuple[str, int]]]


async def test_a_thousand_bad_requests_get_the_right_answer_and_none_is_stored(
    bridge: RunningBridge, http: aiohttp.ClientSession
) -> None:
    url = bridge.url
    now = int(time.time())

    async def forged(_: int) -> tuple[str, int]:
        body = a_body()
        digest = secrets.token_hex(32)
        return "forged", await post(http, url, body, {"X-Kirim-Signature": f"t={now},v1={digest}"})

    async def stale(i: int) -> tuple[str, int]:
        body = a_body()
        return "stale", await post(http, url, body, signed_headers(body, timestamp=now - 301 - i))

    async def future_dated(i: int) -> tuple[str, int]:
        body = a_body()
        headers = signed_headers(body, timestamp=now + 400 + i)
        return "future_dated", await post(http, url, body, headers)

    async def wrong_secret(_: int) -> tuple[str, int]:
        body = a_body()
        headers = signed_headers(body, ["whsec_someone_else"])
        return "wrong_secret", await post(http, url, body, headers)

    async def truncated(i: int) -> tuple[str, int]:
        body = a_body()
        headers = signed_headers(body)
        headers["X-Kirim-Signature"] = headers["X-Kirim-Signature"][: -(1 + i % 40)]
        return "truncated", await post(http, url, body, headers)

    async def missing(_: int) -> tuple[str, int]:
        body = a_body()
        headers = signed_headers(body)
        del headers["X-Kirim-Signature"]
        return "missing", await post(http, url, body, headers)

    async def not_json(i: int) -> tuple[str, int]:
        body = b'{"object": "whatsapp_business_account", "entry": [' + str(i).encode()
        return "not_json", await post(http, url, body, signed_headers(body))

    async def oversized(i: int) -> tuple[str, int]:
        body = a_body() + b" " * (bridge.settings.max_body_bytes + i)
        if i % 2:
            return "oversized", await post(http, url, body, signed_headers(body))

        async def chunks() -> AsyncIterator[bytes]:
            # No Content-Length: the cap must hold while streaming too.
            for start in range(0, len(body), 4096):
                yield body[start : start + 4096]

        return "oversized", await post(http, url, chunks(), signed_headers(body))

    cases: list[Case] = [
        forged,
        stale,
        future_dated,
        wrong_secret,
        truncated,
        missing,
        not_json,
        oversized,
    ]
    limit = asyncio.Semaphore(40)

    async def bounded(case: Case, i: int) -> tuple[str, int]:
        async with limit:
            return await case(i)

    results = await asyncio.gather(*(bounded(cases[i % 8], i) for i in range(1000)))
    expected = {
        "forged": 401,
        "stale": 401,
        "future_dated": 401,
        "wrong_secret": 401,
        "truncated": 401,
        "missing": 401,
        "not_json": 400,
        "oversized": 413,
    }
    wrong = [(name, status) for name, status in results if status != expected[name]]
    assert wrong == []
    assert len(results) == 1000
    assert (
        sum((await end_offsets(bridge.settings.bootstrap_servers, bridge.settings.topic)).values())
        == 0
    )


async def test_refusals_say_why(bridge: RunningBridge, http: aiohttp.ClientSession) -> None:
    body = a_body()
    headers = signed_headers(body, timestamp=int(time.time()) - 3600)
    async with http.post(bridge.url, data=body, headers=headers) as response:
        assert response.status == 401
        assert json.loads(await response.read()) == {"outcome": "unauthorized", "reason": "stale"}


async def test_a_stored_event_is_the_raw_body_keyed_by_message_id_with_kirims_headers(
    bridge: RunningBridge, http: aiohttp.ClientSession
) -> None:
    # Odd spacing on purpose: the bytes must arrive untouched, not re-encoded.
    body = a_body(message_id="msg_01HYKEYED", wamid="wamid.KEYED").replace(b",", b" ,")
    headers = signed_headers(body, event_id="wamid.KEYED", attempt=3)
    async with http.post(bridge.url, data=body, headers=headers) as response:
        assert response.status == 200
        assert json.loads(await response.read()) == {"outcome": "produced"}
    no_id = status_body(
        message_id=None, wamid="wamid.NOKIRIMID", status="sent", timestamp=int(time.time())
    )
    assert await post(http, bridge.url, no_id, signed_headers(no_id)) == 200

    records = await read_all(bridge.settings.bootstrap_servers, bridge.settings.topic)
    by_key = {record.key: record for record in records}
    assert set(by_key) == {b"msg_01HYKEYED", b"wamid.NOKIRIMID"}
    record = by_key[b"msg_01HYKEYED"]
    assert record.value == body
    stored = dict(record.headers)
    assert stored["X-Kirim-Event"] == b"message.status"
    assert stored["X-Kirim-Event-Id"] == b"wamid.KEYED"
    assert stored["X-Kirim-Attempt"] == b"3"
    assert stored["X-Kirim-Delivery-Id"] == b"wbd_TEST"
    assert stored["X-Kirim-Source"] == b"meta"
    assert stored["X-Kirim-Signature"] == headers["X-Kirim-Signature"].encode()
    assert abs(int(stored["X-Bridge-Received-At"]) / 1000 - time.time()) < 60


async def test_rotation_and_both_header_names(
    kafka_bootstrap: str, make_topic: MakeTopic, http: aiohttp.ClientSession
) -> None:
    topic = await make_topic("rotation")
    settings = bridge_settings(kafka_bootstrap, topic, secrets=(SECRET, OLD_SECRET))
    async with running_bridge(settings) as bridge:
        accepted = []
        for signers in ([SECRET], [OLD_SECRET], [OLD_SECRET, SECRET], [SECRET, "whsec_x"]):
            for header in ("X-Kirim-Signature", "X-Kirim-Signature-256"):
                body = a_body()
                status = await post(
                    http, bridge.url, body, signed_headers(body, signers, header=header)
                )
                assert status == 200, (signers, header)
                accepted.append(body)
    # After the rotation completes, only the new secret is configured.
    settings = bridge_settings(kafka_bootstrap, topic, secrets=(SECRET,))
    async with running_bridge(settings) as bridge:
        body = a_body()
        assert await post(http, bridge.url, body, signed_headers(body, [OLD_SECRET])) == 401
        assert await post(http, bridge.url, body, signed_headers(body, [OLD_SECRET, SECRET])) == 200
        accepted.append(body)
    stored = [record.value for record in await read_all(kafka_bootstrap, topic)]
    assert sorted(stored) == sorted(accepted)


async def test_other_event_types_are_acknowledged_not_stored_and_odd_shapes_are_kept(
    bridge: RunningBridge, http: aiohttp.ClientSession
) -> None:
    inbound = b'{"object":"whatsapp_business_account","entry":[{"changes":[]}]}'
    headers = signed_headers(inbound, event="message.received")
    async with http.post(bridge.url, data=inbound, headers=headers) as response:
        assert response.status == 200
        assert json.loads(await response.read()) == {"outcome": "ignored"}
    assert (
        await post(http, bridge.url, b"nope", signed_headers(b"nope", event="message.received"))
        == 400
    )

    # Synonyms of message.status are stored; so is an authentic body of a shape we
    # cannot read (keyed by the event id) and one without an event type.
    synonym = a_body(message_id="msg_SYNONYM")
    assert (
        await post(http, bridge.url, synonym, signed_headers(synonym, event="message.read")) == 200
    )
    odd = b'{"entry": 5}'
    assert await post(http, bridge.url, odd, signed_headers(odd, event_id="wamid.ODD")) == 200
    # lists written as null: read as empty, keyed by the event id
    nulls = b'{"entry": [{"changes": null}, {"id": "w"}], "kirim": null}'
    assert await post(http, bridge.url, nulls, signed_headers(nulls, event_id="wamid.NULLS")) == 200
    untyped = a_body(message_id="msg_UNTYPED")
    untyped_headers = signed_headers(untyped)
    del untyped_headers["X-Kirim-Event"]
    assert await post(http, bridge.url, untyped, untyped_headers) == 200

    records = await read_all(bridge.settings.bootstrap_servers, bridge.settings.topic)
    assert sorted(record.key for record in records) == [
        b"msg_SYNONYM",
        b"msg_UNTYPED",
        b"wamid.NULLS",
        b"wamid.ODD",
    ]


async def test_paths_methods_health_and_metrics(
    bridge: RunningBridge, http: aiohttp.ClientSession
) -> None:
    async with http.get(bridge.url) as response:
        assert response.status == 405
    body = a_body()
    assert await post(http, bridge.base_url + "/elsewhere", body, signed_headers(body)) == 404
    async with http.get(bridge.base_url + "/healthz") as response:
        assert response.status == 200
    async with http.get(bridge.base_url + "/readyz") as response:
        assert response.status == 200
        report = json.loads(await response.read())
        assert report["checks"]["kafka"]["ok"] is True
        assert report["checks"]["startup"]["ok"] is True
    assert await post(http, bridge.url, body, signed_headers(body)) == 200
    async with http.get(bridge.base_url + "/metrics") as response:
        text = (await response.read()).decode()
    for name in (
        'broadcast_bridge_requests_total{outcome="produced"}',
        'broadcast_bridge_signature_failures_total{reason="stale"}',
        "broadcast_bridge_produce_seconds_bucket",
        "broadcast_bridge_in_flight",
    ):
        assert name in text


async def test_signature_is_checked_over_the_raw_bytes(
    bridge: RunningBridge, http: aiohttp.ClientSession
) -> None:
    body = a_body()
    header = sign(body, [SECRET.encode()], int(time.time()))
    reencoded = json.dumps(json.loads(body), indent=1).encode()
    assert await post(http, bridge.url, reencoded, {"X-Kirim-Signature": header}) == 401
    assert await post(http, bridge.url, body, {"X-Kirim-Signature": header}) == 200


async def test_a_graceful_stop_stores_everything_it_acknowledged(
    kafka_bootstrap: str, make_topic: MakeTopic, http: aiohttp.ClientSession
) -> None:
    topic = await make_topic("stop")
    # A long linger keeps records in the producer's buffer when the stop comes.
    settings = bridge_settings(kafka_bootstrap, topic, linger_ms=200)
    bodies = [a_body() for _ in range(150)]
    async with running_bridge(settings) as bridge:
        tasks = [
            asyncio.create_task(post(http, bridge.url, body, signed_headers(body)))
            for body in bodies
        ]
        await asyncio.sleep(0.05)
    # The bridge has stopped: the 50 requests in flight (the client's connection limit)
    # waited for their acknowledgements; the rest found the port closed.
    results = await asyncio.gather(*tasks, return_exceptions=True)
    acknowledged = {body for body, result in zip(bodies, results, strict=True) if result == 200}
    others = [result for result in results if result != 200]
    assert acknowledged
    assert all(isinstance(r, aiohttp.ClientError) or r == 503 for r in others), others
    stored = {record.value for record in await read_all(kafka_bootstrap, topic)}
    assert acknowledged <= stored
