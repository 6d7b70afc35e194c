"""What the soak sends in: the campaigns, malformed request events, forged webhooks.

The audience is known by design (a share of invalid phones and of people without an
opt-in), so the verdict can tell the eligible recipients from those that must be
skipped. Publishing rides out a broker that is killed under it: a chunk whose
publication failed is published again (chunks may arrive more than once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from runtime import defaults
from sandbox.signature import sign
from schemas.requests import BroadcastRequested, Chunk, Recipient, Sender, encode_request_event
from schemas.template import Component, Template, TextParameter

OPTED_IN = datetime(2025, 1, 1, tzinfo=UTC)
FORGED_MARKER = "msg_FORGED"
# Kept with their kind, so each dead letter can be matched to what was sent.
MALFORMED_KINDS = ("not_json", "missing_field", "unknown_type", "wrong_type")


@dataclass(frozen=True, slots=True)
class Person:
    phone: str
    eligible: bool
    # Why an ineligible person must be skipped.
    skip_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: uuid.UUID
    sender: str
    people: tuple[Person, ...]


def design_campaigns(senders: list[str], recipients: int, rng: random.Random) -> list[Campaign]:
    """One campaign per sender; ~1% invalid phones and ~1% without opt-in."""
    per_sender = recipients // len(senders)
    campaigns = []
    for s_index, sender in enumerate(senders):
        people = []
        for i in range(per_sender):
            number = f"+62817{s_index:01d}{i:07d}"
            draw = rng.random()
            if draw < 0.01:
                people.append(Person(f"+6281{i % 10}", False, "invalid_phone"))
            elif draw < 0.02:
                people.append(Person(number, False, "not_opted_in"))
            else:
                people.append(Person(number, True))
        # Invalid phones may collide; keep one of each.
        unique = {p.phone: p for p in people}
        campaigns.append(Campaign(uuid.uuid4(), sender, tuple(unique.values())))
    return campaigns


def chunk_events(campaign: Campaign, chunk_size: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of each chunk of a campaign."""
    template = Template(
        name=defaults.DEFAULT_TEMPLATE,
        language=defaults.DEFAULT_TEMPLATE_LANGUAGE,
        components=[Component(type="body", parameters=[TextParameter(text="Hi {{first_name}}")])],
    )
    people = campaign.people
    count = (len(people) + chunk_size - 1) // chunk_size
    events = []
    for index in range(count):
        recipients = [
            Recipient(
                phone=p.phone,
                opted_in_at=None if p.skip_reason == "not_opted_in" else OPTED_IN,
                variables={"first_name": "Budi"},
            )
            for p in people[index * chunk_size : (index + 1) * chunk_size]
        ]
        event = BroadcastRequested(
            campaign_id=campaign.campaign_id,
            sender=Sender(phone_number_id=campaign.sender),
            template=template,
            recipients=recipients,
            chunk=Chunk(index=index, count=count),
        )
        events.append((str(campaign.campaign_id).encode(), encode_request_event(event)))
    return events


def malformed_event(kind: str, n: int) -> tuple[bytes, bytes]:
    key = f"malformed-{n}".encode()
    campaign = str(uuid.uuid4())
    match kind:
        case "not_json":
            return key, b"{this is not json " + str(n).encode()
        case "missing_field":
            return key, json.dumps(
                {"type": "broadcast.requested", "campaign_id": campaign}
            ).encode()
        case "unknown_type":
            return key, json.dumps({"type": "broadcast.exploded", "campaign_id": campaign}).encode()
        case _:
            body = {"type": "broadcast.requested", "campaign_id": campaign, "sender": 42, "n": n}
            return key, json.dumps(body).encode()


@dataclass
class Published:
    chunks: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    malformed_values: set[bytes] = field(default_factory=set)
    publish_retries: int = 0


async def publish_all(
    bootstrap: str,
    topic: str,
    events: list[tuple[bytes, bytes]],
    malformed: list[tuple[str, tuple[bytes, bytes]]],
    spread_seconds: float,
    published: Published,
) -> None:
    """Publish the chunks over `spread_seconds`, the malformed events among them."""
    rng = random.Random(len(events))
    slots: list[tuple[str | None, tuple[bytes, bytes]]] = [(None, e) for e in events]
    for kind, event in malformed:
        slots.insert(rng.randrange(len(slots) + 1), (kind, event))
    pause = spread_seconds / max(len(slots), 1)
    for malformed_kind, (key, value) in slots:
        await _publish_one(bootstrap, topic, key, value, published)
        if malformed_kind is None:
            published.chunks += 1
        else:
            published.malformed[malformed_kind] += 1
            published.malformed_values.add(value)
        await asyncio.sleep(pause)


async def _publish_one(
    bootstrap: str, topic: str, key: bytes, value: bytes, published: Published
) -> None:
    while True:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, request_timeout_ms=10_000
        )
        try:
            await producer.start()
            await producer.send_and_wait(topic, value, key=key)
        except KafkaError:
            published.publish_retries += 1
            await asyncio.sleep(1.0)
            continue
        finally:
            with contextlib.suppress(KafkaError):
                await producer.stop()
        return


@dataclass
class Forgeries:
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)

    @property
    def acknowledged(self) -> int:
        return sum(n for status, n in self.answers.items() if status.startswith("2"))


def forged_webhook(n: int, secrets: list[str], now: float) -> tuple[bytes, dict[str, str]]:
    """A status webhook that must be refused: wrong secret, stale, or unsigned."""
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [],
            "kirim": {"message_id": f"{FORGED_MARKER}{n:020d}", "phone_number_id": "1"},
        }
    ).encode()
    headers = {"Content-Type": "application/json", "X-Kirim-Event": "message.status"}
    match n % 3:
        case 0:
            headers["X-Kirim-Signature"] = sign(body, ["whsec_forged"], int(now))
        case 1:
            headers["X-Kirim-Signature"] = sign(body, secrets, int(now) - 3600)
        case _:
            pass
    return body, headers


async def forge_webhooks(
    url: str, secrets: list[str], stop: asyncio.Event, forgeries: Forgeries, interval: float
) -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        while not stop.is_set():
            body, headers = forged_webhook(forgeries.sent, secrets, time.time())
            forgeries.sent += 1
            try:
                answer = await http.post(url, content=body, headers=headers)
                forgeries.answers[str(answer.status_code)] += 1
            except httpx.HTTPError:
                forgeries.answers["no answer"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
