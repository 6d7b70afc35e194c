"""Sender resolution: the accounts client (MockTransport and the sandbox), its cache, its waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest

from consumer.intake.accounts import AccountDirectory, AccountsClient
from consumer.intake.errors import AccountsRefused
from consumer.intake.sender import SenderAccount, choose_auto_sender, decide_sender
from consumer.kirim.resources import parse_accounts
from sandbox.config import parse_config
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox

BASE = "http://kirim.test/v1"
KEY = "kdv_live_testtesttesttesttesttest"


def account(number: str, status: str = "connected", tier: Any = 1000) -> dict[str, Any]:
    body = {"phone_number_id": number, "phone_number": "+6281100000001", "status": status}
    if tier is not None:
        body["messaging_tier"] = tier
    return body


@pytest.mark.parametrize(
    ("tier", "parsed"),
    [
        (250, 250),
        (100000, 100_000),
        ("2000", 2000),
        ("TIER_1K", 1000),
        ("TIER_100K", 100_000),
        ("TIER_UNLIMITED", 10**12),
        ("unlimited", 10**12),
        (None, None),
        ("platinum", None),
    ],
)
def test_every_tier_encoding_parses(tier: Any, parsed: int | None) -> None:
    [found] = parse_accounts(
        msgspec.json.encode({"data": [account("1234567", tier=tier)]})
    ).accounts
    assert found.tier == parsed


def test_auto_picks_the_connected_account_with_the_highest_tier() -> None:
    accounts = [
        SenderAccount("111111", "connected", 1000, "GREEN"),
        SenderAccount("222222", "disconnected", 10**12, "GREEN"),
        SenderAccount("333333", "connected", 10_000, "RED"),
        SenderAccount("444444", "connected", 10_000, "GREEN"),
        SenderAccount("555555", "connected", None, "GREEN"),
        SenderAccount("666666", "degraded", 100_000, "GREEN"),
    ]
    assert choose_auto_sender(accounts) == "444444"
    assert choose_auto_sender(list(reversed(accounts))) == "444444"
    assert choose_auto_sender([SenderAccount("1", "pending", 250)]) is None


@pytest.mark.parametrize(
    ("spec", "resolved", "decision"),
    [
        ("111111", None, ("111111", None)),
        ("999999", None, ("999999", "sender_unknown")),
        ("222222", None, ("222222", "sender_disconnected")),
        ("auto", None, ("111111", None)),
        ("auto", "222222", ("222222", "sender_disconnected")),
    ],
)
def test_decide_sender(spec: str, resolved: str | None, decision: tuple[str, str | None]) -> None:
    accounts = [
        SenderAccount("111111", "connected", 1000),
        SenderAccount("222222", "onboarding", 1),
    ]
    got = decide_sender(spec, resolved, accounts)
    assert (got.phone_number_id, got.problem) == decision
    none = decide_sender("auto", None, [SenderAccount("222222", "disconnected", 1)])
    assert none.problem == "no_connected_sender"


class Script:
    """A scripted accounts API: each request takes the next answer (the last one repeats)."""

    def __init__(self, *answers: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request)


def ok(*accounts: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(200, json={"data": list(accounts), "has_more": False})


def status(code: int) -> Callable[[httpx.Request], httpx.Response]:
    body = {"error": {"type": "x", "code": "invalid_api_key", "message": "no"}}
    return lambda _: httpx.Response(code, json=body)


def refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def directory(script: Script, clock: Clock | None = None, **kw: float) -> AccountDirectory:
    client = AccountsClient(BASE, KEY, transport=httpx.MockTransport(script))
    return AccountDirectory(client, clock=clock or Clock(), retry_max_seconds=0.0, **kw)


async def test_requests_carry_the_key_and_ask_for_every_status() -> None:
    script = Script(ok(account("111111")))
    await directory(script).accounts()
    [request] = script.requests
    assert request.url == "http://kirim.test/v1/accounts?status=all"
    assert request.headers["Authorization"] == f"Bearer {KEY}"


async def test_an_unreadable_account_is_left_out_and_a_mixed_case_status_connects() -> None:
    odd = {"phone_number_id": None, "status": "connected"}
    script = Script(ok(odd, account("111111", status="Connected", tier=1000.0)))
    decision = await directory(script).decide("auto", None)
    assert (decision.phone_number_id, decision.problem) == ("111111", None)


async def test_cached_within_the_ttl_then_refreshed() -> None:
    clock = Clock()
    script = Script(ok(account("111111")), ok(account("222222")))
    accounts = directory(script, clock, cache_seconds=60)
    assert [a.phone_number_id for a in await accounts.accounts()] == ["111111"]
    clock.now += 59
    assert [a.phone_number_id for a in await accounts.accounts()] == ["111111"]
    clock.now += 2
    assert [a.phone_number_id for a in await accounts.accounts()] == ["222222"]
    assert len(script.requests) == 2


async def test_a_pausing_answer_is_rechecked_against_a_fresh_list() -> None:
    clock = Clock()
    script = Script(ok(account("111111", "disconnected")), ok(account("111111")))
    accounts = directory(script, clock, cache_seconds=60)
    await accounts.accounts()
    clock.now += 5
    decision = await accounts.decide("111111", None)
    assert decision.problem is None
    assert len(script.requests) == 2


async def test_unreachable_api_is_waited_out_with_backoff_and_the_wait_is_visible() -> None:
    script = Script(refuse_connection, status(503), status(429), ok(account("111111")))
    accounts = directory(script)
    decision = await accounts.decide("auto", None)
    assert decision.phone_number_id == "111111"
    assert len(script.requests) == 4
    assert accounts.waiting_seconds() == 0.0


async def test_waiting_seconds_grows_while_the_api_is_down() -> None:
    clock = Clock()
    accounts = directory(Script(status(500)), clock)
    waiting = asyncio.create_task(accounts.accounts())
    for _ in range(20):
        await asyncio.sleep(0)
    clock.now += 30
    assert accounts.waiting_seconds() == 30
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert accounts.waiting_seconds() == 0.0


async def test_a_stale_list_is_used_while_the_api_is_down() -> None:
    clock = Clock()
    script = Script(ok(account("111111")), status(502))
    accounts = directory(script, clock, cache_seconds=60, stale_seconds=600)
    await accounts.accounts()
    clock.now += 300
    assert [a.phone_number_id for a in await accounts.accounts()] == ["111111"]


@pytest.mark.parametrize("code", [401, 408])
async def test_an_expired_key_and_a_request_timeout_are_waited_out(code: int) -> None:
    # An expired key can be renewed at Kirim without a restart; exiting would take the
    # dispatcher (which stops every sender on a 401 by itself) down with intake.
    script = Script(status(code), status(code), ok(account("111111")))
    accounts = directory(script)
    assert [a.phone_number_id for a in await accounts.accounts()] == ["111111"]
    assert len(script.requests) == 3


@pytest.mark.parametrize("code", [403, 404, 400, 422])
async def test_refusals_are_not_retried(code: int) -> None:
    script = Script(status(code))
    with pytest.raises(AccountsRefused, match=str(code)):
        await directory(script).accounts()
    assert len(script.requests) == 1


@pytest.mark.parametrize("encoding", ["int", "string", "label"])
async def test_against_the_sandbox_every_tier_encoding_picks_the_same_auto_sender(
    encoding: str,
) -> None:
    config = parse_config({
        "tier_encoding": encoding,
        "accounts": {
            "106540352242922": {"messaging_tier": 1000},
            "106540352242933": {"messaging_tier": 100000},
            "106540352242944": {"messaging_tier": "unlimited", "status": "disconnected"},
            "106540352242955": {"messaging_tier": 10000},
        },
    })  # fmt: skip
    async with running_sandbox(SandboxSettings(port=0, config=config)) as sandbox:
        client = AccountsClient(sandbox.api_url, config.api_key)
        try:
            accounts = AccountDirectory(client)
            decision = await accounts.decide("auto", None)
            disconnected = await accounts.decide("106540352242944", None)
        finally:
            await client.aclose()
    assert decision.phone_number_id == "106540352242933"
    assert disconnected.problem == "sender_disconnected"
