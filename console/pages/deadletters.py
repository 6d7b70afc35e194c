"""Dead letters: each rejected request event, and re-publishing a corrected copy.

The list is the newest records of the dead-letter topic (console/deadletters.py):
reason, detail, where it came from (topic, partition, offset), when, and a preview
of the payload (numbers masked for viewers). An operator may edit the payload and
re-publish it to `broadcast.requests`: the copy must decode as a request event
(schemas), and goes out keyed by its campaign like any producer's, through the CLI's
producer. Intake then treats it as any event: a chunk it already stored is a
redelivery, so re-publishing twice does no harm.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cli.errors import CliError
from cli.producer import Record, publish
from console.access import mask_number
from console.guard import action_form
from console.render import console_of, not_found, page, user_of
from schemas.errors import InvalidEvent
from schemas.requests import decode_request_event, event_type

PREVIEW_CHARS: Final = 400
# Any run of seven digits or more, as the services mask them (runtime/refusal.py): E.164
# numbers have 7 to 15, and a longer run must not leave its tail unmasked.
_NUMBER: Final = re.compile(r"\+?\d{7,}")


def preview(value: bytes, *, masked: bool, limit: int = PREVIEW_CHARS) -> str:
    text = value.decode("utf-8", errors="replace")
    if masked:
        text = _NUMBER.sub(lambda m: mask_number(m.group(0)), text)
    return text if len(text) <= limit else text[:limit] + " ..."


async def listing(request: Request) -> Response:
    tail = console_of(request).dead_letters
    masked = not user_of(request).role.sees_numbers
    records = [(r, preview(r.value, masked=masked)) for r in tail.records()]
    done = request.query_params.get("done")
    return page(request, "deadletters.html", records=records, tail=tail, done=done)


async def detail(request: Request) -> Response:
    tail = console_of(request).dead_letters
    record = tail.find(request.path_params["partition"], request.path_params["offset"])
    if record is None:
        return not_found(request, "no such dead letter in the console's window")
    masked = not user_of(request).role.sees_numbers
    return page(
        request,
        "deadletter.html",
        record=record,
        payload=preview(record.value, masked=masked, limit=10**9),
        problem=None,
        editable=not masked,
    )


async def republish(request: Request) -> Response:
    console = console_of(request)
    record = console.dead_letters.find(
        request.path_params["partition"], request.path_params["offset"]
    )
    if record is None:
        return not_found(request, "no such dead letter in the console's window")
    form = await action_form(request)
    if isinstance(form, Response):
        return form
    user = user_of(request)
    payload = str(form.get("payload", "")).encode()
    where = f"dlq {record.partition}/{record.offset}"
    try:
        event = decode_request_event(payload)
    except InvalidEvent as error:
        await console.store.record_action(
            actor=user.name,
            role=user.role.value,
            action="republish",
            campaign_id=None,
            detail=where,
            outcome=f"refused: {error.reason}: {error.detail}",
        )
        return page(
            request,
            "deadletter.html",
            status_code=400,
            record=record,
            payload=payload.decode(errors="replace"),
            problem=f"{error.reason}: {error.detail}",
            editable=True,
        )
    cli = console.settings.cli(user.name)
    try:
        [delivery] = await publish(cli, [Record(event.campaign_key.encode(), payload)])
        outcome = f"ok: {event_type(event)} to {cli.requests_topic} offset {delivery.offset}"
    except CliError as error:
        outcome = f"refused: {error.message}"
    await console.store.record_action(
        actor=user.name,
        role=user.role.value,
        action="republish",
        campaign_id=event.campaign_id,
        detail=where,
        outcome=outcome,
    )
    return RedirectResponse(f"/dead-letters?{urlencode({'done': outcome})}", status_code=303)
