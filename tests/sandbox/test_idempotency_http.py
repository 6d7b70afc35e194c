"""Idempotency keys over HTTP: replay, reuse, in progress, what is and is not stored."""

from __future__ import annotations

import asyncio

import httpx

from sandbox.clock import ManualClock
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from tests.sandbox.conftest import Api, Launch, template_body


async def test_same_key_same_body_replays_exactly(launch: Launch) -> None:
    api = await launch()
    first = await api.send(key="k")
    again = await api.send(key="k")
    assert again.status_code == first.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    audit = await api.audit()
    assert (audit["totals"]["accepted_sends"], audit["totals"]["replays"]) == (1, 1)


async def test_key_order_in_the_body_does_not_matter(launch: Launch) -> None:
    api = await launch()
    body = template_body()
    first = await api.send(key="k", body=body)
    shuffled = dict(reversed(list(body.items())))
    again = await api.send(key="k", body=shuffled)
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"


async def test_same_key_different_body_is_422(launch: Launch) -> None:
    api = await launch()
    await api.send("+628111222333", key="k")
    response = await api.send("+628111222999", key="k")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reuse"
    audit = await api.audit()
    assert audit["totals"]["key_reuse"] == 1
    assert audit["totals"]["key_conflicts"] == 1


async def test_deterministic_400s_are_replayed(launch: Launch) -> None:
    api = await launch()
    body = {**template_body(), "to": "0811"}
    first = await api.send(body=body, key="k")
    again = await api.send(body=body, key="k")
    assert first.status_code == again.status_code == 400
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"


async def test_state_dependent_answers_are_not_stored(launch: Launch) -> None:
    api = await launch({"accounts": {"106540352242922": {"status": "disconnected"}}})
    assert (await api.send(key="k")).status_code == 422
    await api.patch({"accounts": {"106540352242922": {"status": "connected"}}})
    retried = await api.send(key="k")
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers


async def test_5xx_is_not_stored_so_a_retry_sends(launch: Launch) -> None:
    api = await launch({"faults": {"server_errors": {"next": 1}}})
    failed = await api.send(key="k")
    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "internal_error"
    retried = await api.send(key="k")
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers


async def test_429_is_not_stored(launch: Launch) -> None:
    api = await launch({"rate_limits": {"write_per_minute": 1}})
    assert (await api.send(key="a")).status_code == 200
    limited = await api.send(key="b")
    assert limited.status_code == 429
    # A bigger plan refills at 10,000 tokens/s: a few milliseconds bring tokens back.
    assert (await api.patch({"rate_limits": {"write_per_minute": 600000}})).status_code == 200
    await asyncio.sleep(0.01)
    retried = await api.send(key="b")
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers


async def test_in_progress_waits_then_409(launch: Launch) -> None:
    api = await launch(
        {
            "faults": {"latency": {"fixed_ms": 1500}},
            "idempotency": {"in_progress_wait_seconds": 0.05},
        }
    )
    original = asyncio.create_task(api.send(key="k"))
    await asyncio.sleep(0.3)
    duplicate = await api.send(key="k")
    # Whichever reached the sandbox first is the original: order-agnostic on a busy machine.
    answers = sorted([duplicate, await original], key=lambda answer: answer.status_code)
    assert [answer.status_code for answer in answers] == [200, 409]
    assert answers[1].json()["error"]["code"] == "idempotency_in_progress"
    assert (await api.audit())["totals"]["key_in_progress"] == 1


async def test_in_progress_gets_the_original_answer_when_it_lands(launch: Launch) -> None:
    api = await launch({"faults": {"latency": {"fixed_ms": 500}}})
    original = asyncio.create_task(api.send(key="k"))
    await asyncio.sleep(0.1)
    duplicate = await api.send(key="k")
    first = await original
    assert first.status_code == duplicate.status_code == 200
    assert duplicate.content == first.content
    replayed = [answer.headers.get("idempotent-replayed") for answer in (first, duplicate)]
    assert sorted(replayed, key=str) == [None, "true"]  # exactly one is the replay
    assert (await api.audit())["totals"]["accepted_sends"] == 1


async def test_keys_expire_after_the_ttl(http: httpx.AsyncClient) -> None:
    clock = ManualClock()
    async with running_sandbox(SandboxSettings(port=0), clock) as sandbox:
        api = Api(sandbox, http)
        first = await api.send(key="k")
        clock.advance(86_399)
        assert (await api.send(key="k")).headers["idempotent-replayed"] == "true"
        clock.advance(1)
        again = await api.send(key="k")
        assert again.status_code == 200
        assert "idempotent-replayed" not in again.headers
        assert again.json()["data"]["id"] != first.json()["data"]["id"]
        assert (await api.audit())["totals"]["duplicate_accepts"] == 1
