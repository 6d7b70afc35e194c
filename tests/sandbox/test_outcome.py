"""Outcome planning and message timelines, without HTTP."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.catalog import FAILURES
from sandbox.config import Delays
from sandbox.outcome import Plan, forced_outcome, forced_sync, plan_outcome
from sandbox.timeline import build_timeline, status_at


def plan(to: str = "+628111222333", ordinal: int = 0, **options: object) -> Plan:
    arguments: dict[str, object] = {
        "seed": 0,
        "mix": {},
        "read_share": 1.0,
        "forced": {},
        "phone_number_id": "106540352242922",
        "to": to,
        "template": "promo_flash_sale",
        "ordinal": ordinal,
    }
    arguments.update(options)
    return plan_outcome(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("forced", "to", "expected"),
    [
        ({"+62800": "recipient_blocked"}, "+628001234567", "recipient_blocked"),
        ({"+62800": "recipient_blocked", "+628001": "read"}, "+628001234567", "read"),
        ({"+62800": "recipient_blocked", "+628001": "read"}, "+628002234567", "recipient_blocked"),
        ({"+62800": "recipient_blocked"}, "+628101234567", None),
        ({"+628001234567": "sent"}, "+628001234567", "sent"),
    ],
)
def test_longest_prefix_wins(forced: dict[str, str], to: str, expected: str | None) -> None:
    assert forced_outcome(forced, to) == expected


@pytest.mark.parametrize(
    ("outcome", "reached", "code"),
    [
        ("read", "read", None),
        ("delivered", "delivered", None),
        ("sent", "sent", None),
        *[(code, "failed", code) for code in sorted(FAILURES)],
    ],
)
def test_forced_outcomes(outcome: str, reached: str, code: str | None) -> None:
    result = plan(forced={"+62": outcome})
    assert result.reached == reached
    assert (result.failure.code if result.failure else None) == code


def test_sync_outcomes_are_only_the_sync_ones() -> None:
    assert forced_sync({"+62": "internal_error"}, "+628111") == "internal_error"
    assert forced_sync({"+62": "recipient_blocked"}, "+628111") is None


def test_imposed_failures_beat_forced_outcomes() -> None:
    result = plan(forced={"+62": "read"}, imposed="quota_exceeded")
    assert result == Plan("failed", FAILURES["quota_exceeded"])


@settings(deadline=None)
@given(st.integers(), st.text("0123456789", min_size=8, max_size=12), st.integers(0, 5))
def test_same_seed_same_outcome(seed: int, digits: str, ordinal: int) -> None:
    mix = {"recipient_not_on_whatsapp": 0.3, "recipient_blocked": 0.2}
    first = plan(f"+62{digits}", ordinal, seed=seed, mix=mix, read_share=0.5)
    again = plan(f"+62{digits}", ordinal, seed=seed, mix=mix, read_share=0.5)
    assert first == again


def test_the_mix_shares_hold_over_many_sends() -> None:
    mix = {"recipient_not_on_whatsapp": 0.10, "whatsapp_upstream_error": 0.05}
    outcomes = Counter(
        (result.failure.code if result.failure else result.reached)
        for result in (plan(f"+62811{n:07d}", mix=mix, read_share=0.8) for n in range(20_000))
    )
    assert abs(outcomes["recipient_not_on_whatsapp"] / 20_000 - 0.10) < 0.01
    assert abs(outcomes["whatsapp_upstream_error"] / 20_000 - 0.05) < 0.01
    successes = outcomes["read"] + outcomes["delivered"]
    assert abs(outcomes["read"] / successes - 0.8) < 0.02


def test_a_retry_draws_again() -> None:
    mix = {"whatsapp_upstream_error": 0.5}
    draws = {plan("+628111222333", ordinal, mix=mix).reached for ordinal in range(20)}
    assert draws == {"failed", "read"}


DELAYS = Delays(sent=1.0, delivered=2.0, read=4.0, failed=3.0)


@pytest.mark.parametrize(
    ("reached", "scale", "steps"),
    [
        ("read", 1.0, (("sent", 101.0), ("delivered", 103.0), ("read", 107.0))),
        ("delivered", 1.0, (("sent", 101.0), ("delivered", 103.0))),
        ("sent", 1.0, (("sent", 101.0),)),
        ("failed", 1.0, (("failed", 103.0),)),
        ("read", 10.0, (("sent", 100.1), ("delivered", 100.3), ("read", 100.7))),
    ],
)
def test_timelines(reached: str, scale: float, steps: tuple[tuple[str, float], ...]) -> None:
    failure = FAILURES["recipient_blocked"] if reached == "failed" else None
    timeline = build_timeline(Plan(reached, failure), 100.0, DELAYS, scale)
    assert [status for status, _ in timeline.steps] == [status for status, _ in steps]
    assert [at for _, at in timeline.steps] == pytest.approx([at for _, at in steps])


@settings(deadline=None)
@given(
    st.sampled_from(["read", "delivered", "sent", "failed"]),
    st.lists(st.floats(0, 20), max_size=20),
)
def test_status_only_moves_forward(reached: str, offsets: list[float]) -> None:
    failure = FAILURES["recipient_blocked"] if reached == "failed" else None
    timeline = build_timeline(Plan(reached, failure), 100.0, DELAYS, 1.0)
    order = ["pending", "sent", "delivered", "read", "failed"]
    seen = [order.index(status_at(timeline, 100.0 + offset)[0]) for offset in sorted(offsets)]
    assert seen == sorted(seen)
    assert status_at(timeline, 99.0)[0] == "pending"
    assert status_at(timeline, 1000.0)[0] == reached
