"""Rate limits and messaging-tier quota over HTTP."""

from __future__ import annotations

import time

import httpx

from sandbox.clock import ManualClock
from sandbox.config import parse_config
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from tests.sandbox.conftest import NUMBER_ID, Api, Launch

FAST = {"time_scale": 1000.0}


async def test_write_bucket_headers_and_429(launch: Launch) -> None:
    api = await launch({"rate_limits": {"write_per_minute": 3}})
    before = time.time()
    answers = [await api.send(f"+62811100000{n}") for n in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"3"}
    limited = answers[3]
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    # 3 per minute: one token every 20 s, and the bucket is full 60 s after it was empty.
    assert 19 <= int(limited.headers["retry-after"]) <= 20
    assert int(limited.headers["x-ratelimit-reset"]) >= int(before) + 59
    audit = await api.audit()
    assert audit["totals"]["rate_limited"] == 1
    assert audit["numbers"][NUMBER_ID]["rate_limited"] == 1


async def test_read_and_write_buckets_are_separate(launch: Launch) -> None:
    api = await launch({"rate_limits": {"write_per_minute": 1, "read_per_minute": 2}})
    assert (await api.send()).status_code == 200
    assert (await api.send()).status_code == 429
    reads = [await api.get("/accounts") for _ in range(3)]
    assert [r.status_code for r in reads] == [200, 200, 429]
    assert reads[0].headers["x-ratelimit-limit"] == "2"
    assert "retry-after" in reads[2].headers


async def test_4xx_answers_carry_rate_limit_headers(launch: Launch) -> None:
    api = await launch()
    invalid = await api.send("0811")
    unknown = await api.get(f"/{NUMBER_ID}/messages/msg_NOPE")
    for answer in (invalid, unknown):
        assert answer.status_code in {400, 404}
        for header in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
            assert answer.headers[header].isdigit()


async def test_quota_exceeded_is_asynchronous_by_default(launch: Launch) -> None:
    api = await launch({**FAST, "accounts": {NUMBER_ID: {"messaging_tier": 2}}})
    ids = [(await api.send(to)).json()["data"]["id"] for to in ("+62811000001", "+62811000002")]
    again = await api.send("+62811000001")  # already counted: does not use a slot
    over = await api.send("+62811000003")
    assert again.status_code == over.status_code == 200
    failed = await api.wait_status(over.json()["data"]["id"], "failed")
    assert (failed["error"]["code"], failed["error"]["provider_code"]) == ("quota_exceeded", 131048)
    for message_id in [*ids, again.json()["data"]["id"]]:
        await api.wait_status(message_id, "read")
    number = (await api.audit())["numbers"][NUMBER_ID]
    assert number["quota_exceeded_async"] == 1
    assert number["max_window_recipients"] == 2
    assert number["max_window_requested"] == 3
    assert number["tier"] == 2


async def test_quota_exceeded_sync_is_429_with_retry_after(launch: Launch) -> None:
    api = await launch(
        {
            "accounts": {NUMBER_ID: {"messaging_tier": 1}},
            "quota": {"exceeded_mode": "sync", "window_seconds": 30},
        }
    )
    assert (await api.send("+62811000001")).status_code == 200
    over = await api.send("+62811000002", key="over")
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "quota_exceeded"
    assert 1 <= int(over.headers["retry-after"]) <= 30
    assert "x-ratelimit-remaining" in over.headers
    retried = await api.send("+62811000002", key="over")
    assert retried.status_code == 429  # not stored: the retry is judged afresh
    audit = await api.audit()
    assert audit["numbers"][NUMBER_ID]["quota_exceeded_sync"] == 2
    assert audit["numbers"][NUMBER_ID]["quota_exceeded"] == 2


async def test_the_window_rolls(http: httpx.AsyncClient) -> None:
    clock = ManualClock()
    config = parse_config(
        {
            "accounts": {NUMBER_ID: {"messaging_tier": 1}},
            "quota": {"exceeded_mode": "sync", "window_seconds": 60},
        }
    )
    async with running_sandbox(SandboxSettings(port=0, config=config), clock) as sandbox:
        api = Api(sandbox, http)
        assert (await api.send("+62811000001")).status_code == 200
        clock.advance(59.5)
        refused = await api.send("+62811000002")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        clock.advance(0.5)
        assert (await api.send("+62811000002")).status_code == 200
        number = (await api.audit())["numbers"][NUMBER_ID]
        assert number["max_window_recipients"] == 1
        assert number["max_window_requested"] == 2


async def test_a_tier_patched_at_run_time_applies_to_the_next_send(launch: Launch) -> None:
    """`PATCH /_sandbox/config` changes a number's tier mid-window (how the system test
    of tier changes mid-campaign drives it): GET /v1/accounts shows it at once, first
    contacts already in the window still count, and the next send is judged by it."""
    api = await launch(
        {"accounts": {NUMBER_ID: {"messaging_tier": 3}}, "quota": {"exceeded_mode": "sync"}}
    )

    async def tier() -> object:
        accounts = (await api.get("/accounts")).json()["data"]
        return next(a for a in accounts if a["phone_number_id"] == NUMBER_ID)["messaging_tier"]

    assert [(await api.send(f"+6281100000{n}")).status_code for n in range(3)] == [200] * 3
    assert (await api.patch({"accounts": {NUMBER_ID: {"messaging_tier": 1}}})).status_code == 200
    assert await tier() == 1
    assert (await api.send("+62811000004")).status_code == 429  # 3 in the window > 1
    assert (await api.send("+62811000000")).status_code == 200  # already counted: free
    assert (await api.patch({"accounts": {NUMBER_ID: {"messaging_tier": 5}}})).status_code == 200
    assert await tier() == 5
    sends = [(await api.send(f"+6281100001{n}")).status_code for n in range(3)]
    assert sends == [200, 200, 429]  # 5 in the window now
    number = (await api.audit())["numbers"][NUMBER_ID]
    assert number["tier"] == 5
    assert number["max_window_recipients"] == 5
    assert number["quota_exceeded_sync"] == 2


async def test_numbers_in_a_quota_group_share_the_tier(launch: Launch) -> None:
    second = "2222222"
    api = await launch(
        {
            "quota": {"exceeded_mode": "sync"},
            "accounts": {
                NUMBER_ID: {"messaging_tier": 2, "quota_group": "portfolio"},
                second: {
                    "phone_number": "+6281100000002",
                    "messaging_tier": 2,
                    "quota_group": "portfolio",
                },
            },
        }
    )
    assert (await api.send("+62811000001")).status_code == 200
    assert (await api.send("+62811000002", number_id=second)).status_code == 200
    assert (await api.send("+62811000003", number_id=second)).status_code == 429


async def test_throughput_limit_fails_the_excess(launch: Launch) -> None:
    # One message per 20 s: the second send is over it however slow the machine is.
    api = await launch({**FAST, "accounts": {NUMBER_ID: {"throughput_per_second": 0.05}}})
    first = (await api.send("+62811000001")).json()["data"]["id"]
    second = (await api.send("+62811000002")).json()["data"]["id"]
    await api.wait_status(first, "read")
    failed = await api.wait_status(second, "failed")
    assert failed["error"]["code"] == "throughput_limited"
