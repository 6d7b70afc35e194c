"""Senders: each number's tier, quality rating, status, owning instance and quota gauge.

Tier, quality rating and account status are the Kirim API's (`GET /v1/accounts`, read
at most once a minute, console/kirim.py); the sending state (active, or stopped and
why) is the dispatcher's, from `senders`; the owner is whoever holds the number's
ownership lock in PostgreSQL right now; the quota used is the rolling window's
unique recipients (`quota_contacts`), counted in the background (console/quota.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from console.render import console_of, page
from consumer.dispatch.quota import number_budget_key
from consumer.dispatch.tiers import UNLIMITED


async def listing(request: Request) -> Response:
    console = console_of(request)
    settings = console.settings
    api = await console.kirim.current()
    rows = {r["phone_number_id"]: r for r in await console.store.senders()}
    numbers = sorted(set(rows) | set(api.accounts))
    owners = await console.store.owners(numbers)
    senders = []
    for number in numbers:
        row = rows.get(number, {})
        account = api.accounts.get(number)
        tier = api.tier_of(number, row.get("tier"))
        gauge = console.quota.get(number_budget_key(number))
        used = gauge.used if gauge else None
        senders.append(
            {
                "phone_number_id": number,
                "tier": tier,
                "unlimited": tier is not None and tier >= UNLIMITED,
                "quality_rating": account.quality_rating if account else None,
                "account_status": account.status if account else None,
                "state": row.get("state", "active"),
                "state_reason": row.get("state_reason"),
                "hold_until": row.get("quota_hold_until"),
                "owner": owners.get(number),
                "used": used,
                "share": (used / tier) if used is not None and tier and tier < UNLIMITED else None,
            }
        )
    return page(
        request,
        "senders.html",
        senders=senders,
        api=api,
        window_seconds=settings.quota_window_seconds,
    )
