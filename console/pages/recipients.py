"""Recipients: one phone across every campaign, with its message ids, statuses and reasons.

The number is normalised as intake normalises it (E.164). A viewer may search by
number but sees it masked in the answer, as everywhere else.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from console.render import console_of, page
from consumer.intake.phone import normalize_phone

LIMIT: Final = 100


async def search(request: Request) -> Response:
    raw = request.query_params.get("phone", "").strip()
    phone = normalize_phone(raw) if raw else None
    rows = await console_of(request).store.recipient(phone, LIMIT) if phone else []
    problem = None
    if raw and phone is None:
        problem = "not a valid international number (E.164, e.g. +6281234567890)"
    return page(
        request, "recipients.html", query=raw, phone=phone, rows=rows, problem=problem, limit=LIMIT
    )
