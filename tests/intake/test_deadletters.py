"""Bad input never stops the line: 200 generated malformed events among valid ones.

Every malformed event must land in the DLQ once, with its original bytes, the
reason the schema (or intake) gives, and its source position; every valid event
must be in the ledger; the consumer must finish the topic (it never died).
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schemas.deadletter import DeadLetter
from schemas.errors import InvalidEvent
from schemas.requests import decode_request_event, encode_request_event
from tests.intake.builders import person, phone, request
from tests.intake.conftest import IntakeEnv, ledger_rows, publish, run_intake
from tests.schemas.samples import design_request
from tests.topics import read_all

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
PATHS: list[tuple[Any, ...]] = [
    ("type",),
    ("campaign_id",),
    ("sender",),
    ("sender", "phone_number_id"),
    ("template",),
    ("template", "name"),
    ("template", "language"),
    ("template", "components", 0, "type"),
    ("template", "components", 0, "parameters", 0),
    ("recipients",),
    ("recipients", 0),
    ("recipients", 0, "phone"),
    ("recipients", 0, "opted_in_at"),
    ("recipients", 0, "variables"),
    ("chunk",),
    ("chunk", "index"),
    ("chunk", "count"),
    ("send_at",),
]
DELETE = object()


def _set(path: tuple[Any, ...], value: Any) -> bytes:
    doc: Any = design_request()
    doc["campaign_id"] = str(uuid.uuid4())
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(doc).encode()


def _invalid(raw: bytes) -> bool:
    try:
        decode_request_event(raw)
    except InvalidEvent:
        return True
    return False


_valid_bytes = json.dumps(design_request()).encode()
malformed_bytes = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.integers(1, len(_valid_bytes) - 1).map(lambda n: _valid_bytes[:n]),
    st.sampled_from(PATHS).map(lambda path: _set(path, DELETE)),
    st.tuples(st.sampled_from(PATHS), json_values).map(lambda pv: _set(*pv)),
    st.text(max_size=30).map(lambda kind: _set(("type",), kind)),
    st.integers(1, 50).map(lambda n: _set(("chunk",), {"index": n, "count": n})),
    st.just(_set(("sender",), {"phone_number_id": "106540352242922", "auto": True})),
    st.text(min_size=33, max_size=40).map(lambda p: _set(("recipients", 0, "phone"), p)),
).filter(_invalid)
# Valid JSON and schema, but text PostgreSQL cannot store: intake's own reason.
unstorable = st.text(max_size=5).map(
    lambda t: _set(
        ("template", "components", 0, "parameters", 0), {"type": "text", "text": t + "\x00"}
    )
)
malformed = st.one_of(
    malformed_bytes.map(lambda raw: (raw, None)),
    unstorable.map(lambda raw: (raw, "unstorable_text")),
)


def _reason(raw: bytes, expected: str | None) -> str:
    if expected is not None:
        return expected
    try:
        decode_request_event(raw)
    except InvalidEvent as invalid:
        return invalid.reason
    raise AssertionError("generated a valid event")


def generated(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """`count` distinct examples drawn by Hypothesis (its generation phase, not one example:
    the first example Hypothesis draws is the simplest, and a fuzz test wants variety)."""
    found: list[Any] = []

    @settings(
        max_examples=count * 3,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        if example not in found and len(found) < count:
            found.append(example)

    collect()
    assert len(found) == count
    return found


async def test_malformed_events_are_dead_lettered_and_valid_ones_stored(
    intake_env: IntakeEnv, producer: AIOKafkaProducer, db_pool: asyncpg.Pool
) -> None:
    bad: list[tuple[bytes, str | None]] = generated(malformed, 200)
    keys = random.Random(200)
    campaigns = [uuid.uuid4() for _ in range(3)]
    valid = [
        request(
            campaign,
            [person(phone(keys.randrange(10**8)), "eligible") for _ in range(20)],
            index=index,
            count=5,
        )
        for campaign in campaigns
        for index in range(5)
    ]
    conflicting = request(campaigns[0], [person(phone(1), "eligible")], index=1, count=6)
    too_large = json.dumps({"type": "broadcast.requested", "pad": "x" * (1 << 20)}).encode()
    expected: list[tuple[bytes, str]] = [(raw, _reason(raw, want)) for raw, want in bad]
    expected.append((too_large, "too_large"))
    # Valid events are spread among the bad ones; the conflicting chunk comes last.
    stream: list[Any] = [(raw, keys.choice([None, b"k1", b"k2", b"k3"])) for raw, _ in bad]
    for event in valid:
        stream.insert(keys.randrange(len(stream) + 1), event)
    stream.insert(keys.randrange(len(stream) + 1), (too_large, None))
    stream.append(conflicting)
    expected.append((encode_request_event(conflicting), "chunk_conflict"))
    positions = await publish(producer, intake_env.topic, stream)

    await run_intake(intake_env)

    dead = await read_all(intake_env.settings.bootstrap_servers, intake_env.dlq)
    letters = {
        (letter.source_partition, letter.source_offset): (record.value, letter.reason)
        for record in dead
        if (letter := DeadLetter.from_headers(record.headers))
    }
    assert len(dead) == len(letters) == len(expected)
    valid_ids = {id(event) for event in valid}
    published_bad = [
        position
        for position, item in zip(positions, stream, strict=True)
        if id(item) not in valid_ids
    ]
    assert sorted(letters[p] for p in published_bad) == sorted(expected)
    for record in dead:
        letter = DeadLetter.from_headers(record.headers)
        assert letter.source_topic == intake_env.topic
        assert letter.service == "consumer"
    for campaign in campaigns:
        assert len(await ledger_rows(db_pool, campaign)) == 100
