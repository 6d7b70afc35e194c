"""Request events for intake tests, and campaigns whose expected ledger is known by design.

`designed_campaign(...)` builds the chunks of one campaign from people whose
outcome is chosen up front (eligible, invalid phone, not opted in, opted in in
the future, suppressed, missing variable), some repeated inside a chunk or in a
later chunk with a different outcome. The expected ledger is derived from that
design with the rule "the occurrence in the lowest chunk, first in its chunk,
wins": an oracle independent of the code under test.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from runtime import defaults
from schemas.requests import BroadcastRequested, Chunk, Recipient, Sender
from schemas.template import Component, Template, TextParameter

OPTED_IN = datetime(2025, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)
SENDER_ID = defaults.DEFAULT_PHONE_NUMBER_ID

KINDS = (
    "eligible",
    "invalid_phone",
    "not_opted_in",
    "future_opt_in",
    "suppressed",
    "missing_variable",
)


def phone(n: int) -> str:
    """A valid Indonesian mobile number in E.164, distinct for each n < 10**8."""
    return f"+62812{n % 10**8:08d}"


def template(*, variables: bool = True) -> Template:
    text = "Hi {{first_name}}, {{ discount }} off" if variables else "Flash sale today"
    return Template(
        name=defaults.DEFAULT_TEMPLATE,
        language=defaults.DEFAULT_TEMPLATE_LANGUAGE,
        components=[Component(type="body", parameters=[TextParameter(text=text)])],
    )


def request(
    campaign_id: uuid.UUID,
    recipients: list[Recipient],
    *,
    index: int = 0,
    count: int = 1,
    sender: Sender | None = None,
    tmpl: Template | None = None,
    send_at: datetime | None = None,
) -> BroadcastRequested:
    return BroadcastRequested(
        campaign_id=campaign_id,
        sender=sender or Sender(phone_number_id=SENDER_ID),
        template=tmpl or template(),
        recipients=recipients,
        chunk=Chunk(index=index, count=count),
        send_at=send_at,
    )


def person(number: str, kind: str, *, name: str = "Budi") -> Recipient:
    variables = {"first_name": name, "discount": "20%"}
    if kind == "missing_variable":
        variables = {"first_name": name}
    if kind == "not_opted_in":
        return Recipient(phone=number, variables=variables)
    opted_in = FAR_FUTURE if kind == "future_opt_in" else OPTED_IN
    return Recipient(phone=number, opted_in_at=opted_in, variables=variables)


@dataclass
class DesignedCampaign:
    campaign_id: uuid.UUID
    chunks: list[BroadcastRequested]
    # phone (or raw text for invalid ones) -> (status, reason)
    expected: dict[str, tuple[str, str | None]]
    suppressed: list[str] = field(default_factory=list)

    @property
    def eligible(self) -> int:
        return sum(1 for status, _ in self.expected.values() if status == "pending")


def _expected_row(kind: str) -> tuple[str, str | None]:
    if kind == "eligible":
        return "pending", None
    return "skipped", "not_opted_in" if kind == "future_opt_in" else kind


def designed_campaign(
    *, chunks: int, per_chunk: int, seed: int, base: int | None = None
) -> DesignedCampaign:
    """A campaign of `chunks` chunks of about `per_chunk` recipients with mixed outcomes."""
    rng = random.Random(seed)
    base = rng.randrange(10**8) if base is None else base
    campaign_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    occurrences: list[list[tuple[str, Recipient]]] = [[] for _ in range(chunks)]
    winners: dict[str, tuple[tuple[int, int], str]] = {}
    suppressed: list[str] = []
    serial = 0
    for index in range(chunks):
        for _ in range(per_chunk):
            serial += 1
            kind = rng.choices(KINDS, weights=(70, 5, 5, 5, 5, 10))[0]
            number = f"+62 812 bad{base}-{serial}" if kind == "invalid_phone" else None
            number = number or phone(base + serial)
            if kind == "suppressed":
                suppressed.append(number)
            occurrences[index].append((kind, person(number, kind)))
            # Repeats: same chunk (later position) or a later chunk, other outcome.
            if kind != "suppressed" and rng.random() < 0.08:
                again = rng.choice([k for k in KINDS if k not in ("suppressed", "invalid_phone")])
                # An invalid number stays invalid whatever else its repeat says.
                again = "invalid_phone" if kind == "invalid_phone" else again
                target = rng.randrange(index, chunks)
                occurrences[target].append((again, person(number, again, name="Ani")))
    for index, items in enumerate(occurrences):
        if index % 2:
            rng.shuffle(items)  # so a repeat is sometimes the first occurrence in its chunk
        for position, (kind, recipient) in enumerate(items):
            key = recipient.phone.strip()
            rank = (index, position)
            if key not in winners or rank < winners[key][0]:
                winners[key] = (rank, kind)
    events = [
        request(campaign_id, [r for _, r in items], index=index, count=chunks)
        for index, items in enumerate(occurrences)
    ]
    expected = {key: _expected_row(kind) for key, (_, kind) in winners.items()}
    return DesignedCampaign(campaign_id, events, expected, suppressed)


def shifted(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)
