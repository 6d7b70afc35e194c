"""The reconciler's backlog decisions (pure): what each entry's fate is, when it is looked
at again, and how far the cursor moves."""

from __future__ import annotations

import uuid

import pytest

from consumer.dispatch.failures import (
    UNKNOWN_MAX_DELAY_SECONDS,
    Fate,
    cursor_after,
    fate,
    look_again_at,
    unknown_horizon,
)
from consumer.dispatch.store import AsyncFailure, BacklogEntry

NOW = 1_000_000.0
HORIZON = unknown_horizon(82_800.0)


def failure(failed_at: float | None = NOW - 5) -> AsyncFailure:
    return AsyncFailure(
        campaign_id=uuid.uuid4(),
        phone="+628120000000",
        generation=0,
        message_id="msg_A",
        phone_number_id="106540352242922",
        error_code="whatsapp_upstream_error",
        provider_code=131000,
        error_message=None,
        failed_at=failed_at,
    )


def entry(
    *,
    seq: int = 1,
    fresh: bool = True,
    failed: bool = True,
    held: bool = True,
    queued: bool = True,
    age: float = 10.0,
) -> BacklogEntry:
    return BacklogEntry(
        seq=seq,
        message_id="msg_A",
        recorded_at=NOW - age,
        fresh=fresh,
        failed=failed,
        held=held,
        failure=failure() if held and queued else None,
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (entry(), Fate.ACT),
        (entry(failed=False), Fate.DONE),  # delivered or read since: multi-device
        (entry(queued=False), Fate.DONE),  # the ledger moved on (acted on, checked, retried)
        (entry(held=False), Fate.UNKNOWN),  # the send's result is not recorded yet
        (entry(held=False, age=HORIZON - 1), Fate.UNKNOWN),
        (entry(held=False, age=HORIZON), Fate.DONE),  # no longer learnable by a same-key send
        (entry(held=False, failed=False), Fate.DONE),
    ],
)
def test_fate(given: BacklogEntry, expected: Fate) -> None:
    assert fate(given, NOW, HORIZON) is expected


def test_the_horizon_covers_the_key_window() -> None:
    assert unknown_horizon(82_800.0) > 82_800.0


@pytest.mark.parametrize(
    ("given", "fated", "recheck_waits", "expected"),
    [
        (entry(), Fate.ACT, False, None),  # acted on, or found delivered: finished
        (entry(), Fate.ACT, True, NOW - 5 + 30),  # in its grace period: when it ends
        (entry(age=100.0), Fate.DONE, False, None),
        (entry(held=False, age=1.0), Fate.UNKNOWN, False, NOW + 2.0),  # soon after: next pass
        (entry(held=False, age=100.0), Fate.UNKNOWN, False, NOW + 50.0),  # backs off
        (entry(held=False, age=HORIZON - 1), Fate.UNKNOWN, False, NOW + UNKNOWN_MAX_DELAY_SECONDS),
    ],
)
def test_look_again_at(
    given: BacklogEntry, fated: Fate, recheck_waits: bool, expected: float | None
) -> None:
    when = look_again_at(
        given,
        fated,
        recheck_waits=recheck_waits,
        now=NOW,
        grace_seconds=30.0,
        interval_seconds=2.0,
    )
    assert when == expected


def test_a_wait_past_its_grace_period_is_asked_again_next_pass() -> None:
    old = BacklogEntry(
        seq=1,
        message_id="msg_A",
        recorded_at=NOW - 60,
        fresh=False,
        failed=True,
        held=True,
        failure=failure(failed_at=NOW - 60),
    )
    when = look_again_at(
        old, Fate.ACT, recheck_waits=True, now=NOW, grace_seconds=30.0, interval_seconds=2.0
    )
    assert when == NOW + 2.0


def test_the_cursor_moves_past_fresh_entries_only() -> None:
    entries = [entry(seq=5), entry(seq=7), entry(seq=90, fresh=False)]
    assert cursor_after(4, entries) == 7
    # Only due waits (some beyond the cursor, put back by an adoption): the cursor stays.
    assert cursor_after(4, [entry(seq=90, fresh=False)]) == 4
    assert cursor_after(4, []) == 4
