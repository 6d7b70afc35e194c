"""Status updates for the fold's tests: a small vocabulary, so collisions are frequent."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable

from hypothesis import strategies as st

from projector.fold import admissible
from projector.records import StatusRecord
from schemas.webhooks import StatusUpdate

_offsets = itertools.count()


def as_records(updates: Iterable[StatusUpdate], topic: str = "test") -> list[StatusRecord]:
    """One record per admissible update, at distinct positions (as `read_batch` makes them)."""
    return [
        StatusRecord(topic, 0, next(_offsets), None, None, [u]) for u in updates if admissible(u)
    ]


def update(
    status: str,
    at: int,
    *,
    message_id: str | None = "msg_A",
    wamid: str = "wamid.A",
    recipient_id: str | None = "628111222333",
    error_code: str | None = None,
    provider_code: int | None = None,
    error_message: str | None = None,
    phone_number_id: str | None = "106540352242922",
) -> StatusUpdate:
    return StatusUpdate(
        message_id=message_id,
        wamid=wamid,
        phone_number_id=phone_number_id,
        status=status,
        occurred_at=at,
        recipient_id=recipient_id,
        error_code=error_code,
        provider_code=provider_code,
        error_message=error_message,
    )


STATUSES = st.sampled_from(["sent", "delivered", "read", "failed", "failed", "deleted"])
TEXTS = st.sampled_from([None, "", "a", "b", "B", "\x00x", "é", "\ud800"])


@st.composite
def updates(
    draw: st.DrawFn, message_ids: tuple[str | None, ...] = ("msg_A", "msg_B")
) -> StatusUpdate:
    return StatusUpdate(
        message_id=draw(st.sampled_from(message_ids)),
        wamid=draw(st.sampled_from(["wamid.A", "wamid.B"])),
        phone_number_id=draw(st.sampled_from([None, "106540352242922", "999999"])),
        status=draw(STATUSES),
        occurred_at=draw(st.integers(min_value=1_700_000_000, max_value=1_700_000_006)),
        recipient_id=draw(st.sampled_from([None, "628111222333", "628111222334"])),
        error_code=draw(
            st.sampled_from([None, "", "recipient_blocked", "recipient_not_on_whatsapp", "x"])
        ),
        provider_code=draw(st.sampled_from([None, 0, 1013, 131026, 2**40, -1])),
        error_message=draw(TEXTS),
    )


def random_updates(rng: random.Random, message_ids: list[str], count: int) -> list[StatusUpdate]:
    """The same vocabulary as `updates()`, for tests that cannot take Hypothesis's data."""
    return [
        StatusUpdate(
            message_id=rng.choice([*message_ids, None]),
            wamid=rng.choice(["wamid.A", "wamid.B"]) + message_ids[0],
            phone_number_id=rng.choice([None, "106540352242922", "999999"]),
            status=rng.choice(["sent", "delivered", "read", "failed", "failed", "deleted"]),
            occurred_at=rng.randint(1_700_000_000, 1_700_000_006),
            recipient_id=rng.choice([None, "628111222333", "628111222334"]),
            error_code=rng.choice([None, "", "recipient_blocked", "template_paused", "x"]),
            provider_code=rng.choice([None, 0, 1013, 131026, 2**40, -1]),
            error_message=rng.choice([None, "", "a", "b", "B", "\x00x", "é", "\ud800"]),
        )
        for _ in range(count)
    ]
