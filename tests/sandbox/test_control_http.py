"""The `/_sandbox` control API over HTTP: audit, reset, config, message listing."""

from __future__ import annotations

import asyncio
from collections import Counter

from runtime import defaults
from tests.sandbox.conftest import NUMBER_ID, Launch, template_body

SECOND = "2222222"
TWO_NUMBERS = {
    "accounts": {NUMBER_ID: {}, SECOND: {"phone_number": "+6281100000002"}},
    "templates": {"promo_flash_sale": {}, "reminder": {"body_params": 1}},
}


async def test_audit_counts_per_number_and_template(launch: Launch) -> None:
    api = await launch(TWO_NUMBERS)
    await api.send("+62811000001", key="a")
    await api.send("+62811000001", key="a")  # replay
    await api.send("+62811000001", key="b")  # duplicate accept: same number, template, to
    await api.send("+62811000002", key="c", number_id=SECOND)
    await api.send("+62811000001", key="d", body=template_body("+62811000001", name="reminder"))
    await api.send("+62811000003", key="a")  # key reuse
    audit = await api.audit()
    totals = audit["totals"]
    assert totals["accepted_sends"] == 4
    assert totals["distinct_recipients"] == 2
    assert totals["duplicate_accepts"] == 1
    assert totals["distinct_triples"] == 3
    assert totals["replays"] == 1
    assert totals["key_reuse"] == 1
    first = audit["numbers"][NUMBER_ID]
    assert (first["accepted_sends"], first["distinct_recipients"], first["duplicate_accepts"]) == (
        3,
        1,
        1,
    )
    assert first["max_window_recipients"] == 1
    second = audit["numbers"][SECOND]
    assert (second["accepted_sends"], second["duplicate_accepts"]) == (1, 0)
    promo = audit["templates"]["promo_flash_sale"]
    assert (
        promo["accepted_sends"],
        promo["distinct_recipients"],
        promo["duplicate_accepts"],
        promo["replays"],
    ) == (3, 2, 1, 1)
    assert audit["templates"]["reminder"]["accepted_sends"] == 1
    assert audit["requests"] == 6


async def test_rejections_and_failures_are_counted_by_code(launch: Launch) -> None:
    api = await launch(
        {"time_scale": 1000.0, "outcomes": {"forced": {"+62800": "recipient_blocked"}}}
    )
    await api.send("0811")
    await api.send(body=template_body(name="nope"))
    await api.send("+628001112222")
    audit = await api.audit()
    assert audit["totals"]["rejected"] == {"invalid_phone_number": 1, "invalid_template_name": 1}
    assert audit["totals"]["failed"] == {"recipient_blocked": 1}


async def test_reset_forgets_everything(launch: Launch) -> None:
    api = await launch()
    await api.send(key="k")
    await api.patch({"rate_limits": {"write_per_minute": 5}})
    reset = await api.client.post(api.sandbox.control_url + "/reset")
    assert reset.status_code == 200
    audit = await api.audit()
    assert audit["totals"]["accepted_sends"] == 0
    assert (await api.messages())["data"] == []
    again = await api.send(key="k")
    assert "idempotent-replayed" not in again.headers
    assert again.headers["x-ratelimit-limit"] == "600"  # the start config is back


async def test_reset_can_keep_the_config(launch: Launch) -> None:
    api = await launch({"rate_limits": {"write_per_minute": 5}})
    await api.client.post(api.sandbox.control_url + "/reset", params={"keep_config": "true"})
    assert (await api.send()).headers["x-ratelimit-limit"] == "5"


async def test_config_get_masks_secrets(launch: Launch) -> None:
    api = await launch()
    response = await api.client.get(api.sandbox.control_url + "/config")
    shown = response.json()["data"]
    assert shown["accounts"][NUMBER_ID]["status"] == "connected"
    assert defaults.KIRIM_API_KEY not in response.text
    assert defaults.KIRIM_WEBHOOK_SECRETS not in response.text


async def test_bad_patch_is_400_and_changes_nothing(launch: Launch) -> None:
    api = await launch()
    refused = await api.patch({"outcomes": {"mix": {"recipient_blocked": 3}}})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_request"
    garbage = await api.client.patch(api.sandbox.control_url + "/config", content=b"{oops")
    assert garbage.status_code == 400
    shown = (await api.client.get(api.sandbox.control_url + "/config")).json()["data"]
    assert shown["outcomes"]["mix"] == {}


async def test_pause_a_template_and_disconnect_a_number_mid_run(launch: Launch) -> None:
    api = await launch({"time_scale": 1000.0})
    assert (await api.send()).status_code == 200
    await api.patch({"templates": {"promo_flash_sale": {"status": "paused"}}})
    paused = (await api.send("+62811000009")).json()["data"]["id"]
    assert (await api.wait_status(paused, "failed"))["error"]["code"] == "template_paused"
    await api.patch({"accounts": {NUMBER_ID: {"status": "disconnected"}}})
    assert (await api.send()).status_code == 422
    listed = (await api.get("/accounts", status="connected")).json()["data"]
    assert listed == []


async def test_message_listing_pages_and_filters(launch: Launch) -> None:
    api = await launch(
        {
            "time_scale": 1000.0,
            "outcomes": {"forced": {"+62800": "recipient_blocked"}},
            **TWO_NUMBERS,
        }
    )
    sent_ids = []
    for n in range(5):
        sent_ids.append((await api.send(f"+6281100000{n}", key=f"k{n}")).json()["data"]["id"])
    blocked = (await api.send("+628001112222")).json()["data"]["id"]
    other = (await api.send("+62811000009", number_id=SECOND)).json()["data"]["id"]
    await api.wait_status(blocked, "failed")
    first = await api.messages(limit="3")
    assert [m["id"] for m in first["data"]] == sent_ids[:3]
    assert first["has_more"] is True
    rest = await api.messages(limit="10", after=first["next_cursor"])
    assert [m["id"] for m in rest["data"]] == [*sent_ids[3:], blocked, other]
    assert rest["has_more"] is False
    assert rest["next_cursor"] is None
    failed = await api.messages(status="failed")
    assert [(m["id"], m["error_code"]) for m in failed["data"]] == [(blocked, "recipient_blocked")]
    by_number = await api.messages(phone_number_id=SECOND)
    assert [m["id"] for m in by_number["data"]] == [other]
    assert first["data"][0]["idempotency_key"] == "k0"
    assert first["data"][0]["to"] == "+62811000000"


async def test_the_ledger_reconciles_with_the_audit(launch: Launch) -> None:
    api = await launch({"outcomes": {"mix": {"recipient_not_on_whatsapp": 0.3}}})
    for n in range(40):
        await api.send(f"+62811{n % 30:06d}", key=f"k{n}")
    listed = (await api.messages())["data"]
    audit = await api.audit()
    assert len(listed) == audit["totals"]["accepted_sends"] == 40
    triples = Counter((m["phone_number_id"], m["template"], m["to"]) for m in listed)
    assert (
        sum(count - 1 for count in triples.values()) == audit["totals"]["duplicate_accepts"] == 10
    )


async def test_same_seed_same_outcomes_across_runs(launch: Launch) -> None:
    mix = {"recipient_not_on_whatsapp": 0.3, "recipient_blocked": 0.2}

    async def outcomes(seed: int) -> list[str | None]:
        api = await launch({"time_scale": 10_000.0, "outcomes": {"seed": seed, "mix": mix}})
        for n in range(30):
            await api.send(f"+62811{n:06d}")
        for _ in range(1000):  # bounded: every message ends read or failed within ms
            listed = (await api.messages())["data"]
            if all(m["status"] in {"read", "failed"} for m in listed):
                break
            await asyncio.sleep(0.01)
        return [m["error_code"] for m in listed]

    first = await outcomes(7)
    assert first == await outcomes(7)
    assert first != await outcomes(8)
    assert {code for code in first if code} <= set(mix)
