"""What the template-health breaker's tests need from the sandbox, over HTTP.

A template of its own failure mix (`templates.<name>.outcome_mix`: accepted, then failed
asynchronously with 131049 or 1013 for about that share of its sends, the other
templates untouched), and a number's `quality_rating` changed at run time
(`PATCH /_sandbox/config`), shown by `GET /v1/accounts` at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.sandbox.conftest import NUMBER_ID, WAIT_SECONDS, Api, Launch, template_body

OTHER = "order_update"


async def _final(api: Api, sent: int) -> list[dict[str, Any]]:
    """The listing once every accepted message reached its last status."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        listed: list[dict[str, Any]] = (await api.messages(limit="10000"))["data"]
        if len(listed) == sent and all(m["status"] in ("read", "failed") for m in listed):
            return listed
        assert time.monotonic() < deadline, listed[:3]
        await asyncio.sleep(0.05)


async def test_a_template_of_its_own_mix_fails_about_its_share_asynchronously(
    launch: Launch,
) -> None:
    api = await launch(
        {
            "time_scale": 1000.0,
            "templates": {
                "promo_flash_sale": {
                    "outcome_mix": {"ecosystem_engagement": 0.2, "recipient_blocked": 0.05}
                },
                OTHER: {"languages": ["id_ID"], "body_params": 1},
            },
            "outcomes": {"mix": {}},
        }
    )
    flash = [f"+628120{n:06d}" for n in range(400)]
    other = [f"+628130{n:06d}" for n in range(100)]
    answers = list(await asyncio.gather(*(api.send(to) for to in flash)))
    answers += await asyncio.gather(
        *(api.send(to, body=template_body(to, name=OTHER)) for to in other)
    )
    # Accepted first, every one of them: the failures come later, by webhook and GET.
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["data"]["status"] for a in answers} == {"pending"}
    listed = await _final(api, len(answers))
    by_to = {m["to"]: m for m in listed}
    codes = [by_to[to]["error_code"] for to in flash]
    engagement, blocked = codes.count("ecosystem_engagement"), codes.count("recipient_blocked")
    assert 50 <= engagement <= 110  # 20% of 400 is 80
    assert 8 <= blocked <= 35  # 5% of 400 is 20
    assert set(codes) <= {None, "ecosystem_engagement", "recipient_blocked"}
    assert {by_to[to]["status"] for to in other} == {"read"}
    failed = next(m for m in listed if m["error_code"] == "ecosystem_engagement")
    message = await api.message(failed["id"])
    assert message["error"]["provider_code"] == 131049


async def test_a_template_mix_replaces_the_global_one_and_is_checked(launch: Launch) -> None:
    api = await launch({"time_scale": 1000.0, "outcomes": {"mix": {"recipient_blocked": 1.0}}})
    first = (await api.send("+628140000001")).json()["data"]["id"]
    assert (await api.wait_status(first, "failed"))["error"]["code"] == "recipient_blocked"
    # A mix of its own, even one that fails nothing, takes the global one's place.
    own = {"templates": {"promo_flash_sale": {"outcome_mix": {"whatsapp_upstream_error": 0.0}}}}
    assert (await api.patch(own)).status_code == 200
    second = (await api.send("+628140000002")).json()["data"]["id"]
    await api.wait_status(second, "read")
    bad = [
        {"templates": {"promo_flash_sale": {"outcome_mix": {"no_such_code": 0.1}}}},
        {
            "templates": {
                "promo_flash_sale": {
                    "outcome_mix": {"recipient_blocked": 0.7, "ecosystem_engagement": 0.4}
                }
            }
        },
    ]
    for patch in bad:
        refused = await api.patch(patch)
        assert refused.status_code == 400, refused.text
        assert "templates.promo_flash_sale.outcome_mix" in refused.text


async def test_a_quality_rating_patched_at_run_time_shows_at_once(launch: Launch) -> None:
    api = await launch()

    async def rating() -> object:
        accounts = (await api.get("/accounts")).json()["data"]
        return next(a for a in accounts if a["phone_number_id"] == NUMBER_ID)["quality_rating"]

    assert await rating() == "GREEN"
    for value in ("YELLOW", "RED", "GREEN"):
        patched = await api.patch({"accounts": {NUMBER_ID: {"quality_rating": value}}})
        assert patched.status_code == 200, patched.text
        assert await rating() == value
    # Sending goes on whatever the rating: lowering the tier is Meta's (and the test's) call.
    assert (await api.send("+628150000001")).status_code == 200
    refused = await api.patch({"accounts": {NUMBER_ID: {"quality_rating": "ORANGE"}}})
    assert refused.status_code == 400
