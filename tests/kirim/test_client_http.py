"""KirimClient over real HTTP: bodies that arrive in pieces are read whole, oversized
ones are cut off and reported, whatever the framing (a server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest

from consumer.kirim.answers import OVERSIZED
from consumer.kirim.client import KirimClient, KirimTransportError
from tests.kirim.piecewise import Framing, PiecewiseServer, Reply, piecewise_server

KEY = "kdv_live_testtesttesttesttesttest"
SENDER = "106540352242922"
MESSAGE_ID = "msg_01HZX3K9Q2W8E5R7T1Y4U6I0PA"
# Padding makes each body several TCP segments' worth, as a real listing would be.
PAD = "x" * 3000
FRAMINGS: list[Framing] = ["length", "chunked", "close"]


def body(document: object) -> bytes:
    return msgspec.json.encode(document)


@asynccontextmanager
async def client_of(
    *replies: Reply, **options: int
) -> AsyncIterator[tuple[KirimClient, PiecewiseServer]]:
    async with piecewise_server(*replies) as server:
        client = KirimClient(server.url, KEY, timeout_seconds=5.0, **options)
        try:
            yield client, server
        finally:
            await client.close()


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("pieces", [1, 7])
async def test_a_send_answer_in_pieces_is_read_whole(framing: Framing, pieces: int) -> None:
    accepted = body({
        "data": {"id": MESSAGE_ID, "object": "message", "status": "pending", "note": PAD},
        "request_id": "req_1",
    })  # fmt: skip
    reply = Reply(200, accepted, framing, pieces, headers={"X-RateLimit-Limit": "600"})
    async with client_of(reply) as (client, server):
        answer = await client.send_template(SENDER, "k" * 64, b"{}")
    assert (answer.message_id, answer.anomaly, answer.rate_limit) == (MESSAGE_ID, None, 600.0)
    assert server.requests == [f"POST /v1/{SENDER}/messages HTTP/1.1"]


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_an_error_answer_in_pieces_keeps_its_code(framing: Framing) -> None:
    refused = body({
        "error": {"type": "invalid_request", "code": "account_not_connected", "message": PAD},
    })  # fmt: skip
    async with client_of(Reply(422, refused, framing, 5)) as (client, _):
        answer = await client.send_template(SENDER, "k" * 64, b"{}")
    assert (answer.status, answer.error_code, answer.anomaly) == (
        422,
        "account_not_connected",
        None,
    )


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_an_accounts_list_in_pieces_is_read_whole(framing: Framing) -> None:
    accounts = [
        {"phone_number_id": str(106540352242900 + i), "status": "connected",
         "messaging_tier": 1000, "name": PAD[:200]}
        for i in range(40)
    ]  # fmt: skip
    async with client_of(Reply(200, body({"data": accounts}), framing, 9)) as (client, server):
        found = await client.accounts()
    assert [a.phone_number_id for a in found] == [a["phone_number_id"] for a in accounts]
    assert server.requests == ["GET /v1/accounts?status=all HTTP/1.1"]


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_a_message_in_pieces_is_read_whole(framing: Framing) -> None:
    failed = body({
        "data": {"id": MESSAGE_ID, "status": "failed", "to": "+628111222333",
                 "error": {"code": "quota_exceeded", "message": PAD, "provider_code": 131048}},
    })  # fmt: skip
    async with client_of(Reply(200, failed, framing, 6)) as (client, _):
        state = await client.message(SENDER, MESSAGE_ID)
    assert state is not None
    assert (state.status, state.error_code, state.provider_code) == (
        "failed",
        "quota_exceeded",
        131048,
    )


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_rate_limits_in_pieces_are_read_whole(framing: Framing) -> None:
    me = body({
        "data": {"organisation": PAD, "rate_limits": {
            "tier": "pro", "write_per_minute": 600, "read_per_minute": 6000}},
    })  # fmt: skip
    async with client_of(Reply(200, me, framing, 4)) as (client, _):
        assert await client.rate_limits() == (600, 6000)


async def test_an_endless_send_answer_is_cut_off_and_reported_oversized() -> None:
    start = b'{"data": {"id": "' + MESSAGE_ID.encode() + b'", "note": "'
    endless = Reply(200, start, "chunked", 1, pause=0.001, endless=512)
    async with client_of(endless, max_answer_bytes=4096) as (client, server):
        answer = await asyncio.wait_for(client.send_template(SENDER, "k" * 64, b"{}"), 5)
        # The client stopped reading and dropped the connection.
        await asyncio.wait_for(server.peer_left.wait(), 5)
    assert (answer.anomaly, answer.message_id) == (OVERSIZED, None)


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_a_send_answer_just_over_the_limit_is_oversized(framing: Framing) -> None:
    reply = Reply(200, b'{"data": {"id": "msg_1"}, "pad": "' + b"x" * 5000 + b'"}', framing, 8)
    async with client_of(reply, max_answer_bytes=4096) as (client, _):
        answer = await client.send_template(SENDER, "k" * 64, b"{}")
    assert answer.anomaly == OVERSIZED


async def test_a_send_answer_of_exactly_the_limit_is_read() -> None:
    document = b'{"data": {"id": "' + MESSAGE_ID.encode() + b'"}, "pad": "'
    document += b"x" * (4096 - len(document) - 2) + b'"}'
    assert len(document) == 4096
    async with client_of(Reply(200, document, "chunked", 3), max_answer_bytes=4096) as (client, _):
        answer = await client.send_template(SENDER, "k" * 64, b"{}")
    assert (answer.anomaly, answer.message_id) == (None, MESSAGE_ID)


async def test_a_body_cut_short_by_the_server_is_a_transport_error() -> None:
    # Content-Length promises more than is sent before the connection closes.
    short = Reply(200, b'{"data": [', "close", 1, headers={"Content-Length": "500"})
    async with client_of(short) as (client, _):
        with pytest.raises(KirimTransportError, match="network_error"):
            await client.accounts()


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_a_compressed_listing_in_pieces_is_read_whole(framing: Framing) -> None:
    accounts = [{"phone_number_id": str(106540352242900 + i), "name": PAD} for i in range(30)]
    packed = gzip.compress(body({"data": accounts}))
    reply = Reply(200, packed, framing, 5, headers={"Content-Encoding": "gzip"})
    async with client_of(reply) as (client, _):
        assert len(await client.accounts()) == 30
