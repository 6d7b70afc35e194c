"""Pure decisions: doctor's checks, failure kinds and retry codes, output formatting."""

from __future__ import annotations

import pytest

from cli.doctor import check_migrations, check_secrets, check_skew, check_topics
from cli.errors import UsageError
from cli.failures import UNKNOWN_OUTCOME, failure_kind, retry_codes
from cli.output import bar, duration, table
from cli.progress import RateTracker, Snapshot
from consumer.dispatch.policy import IN_DOUBT_CODES, RETRYABLE_CODES
from runtime.migrate import load_migrations


@pytest.mark.parametrize(
    ("secrets", "outcome"),
    [
        (("whsec_0123456789abcdef",), "ok"),
        (("whsec_0123456789abcdef", "whsec_fedcba9876543210"), "ok"),
        (("whsec_sandbox_default_secret",), "warn"),
        (("0123456789abcdef0123",), "fail"),
        (("whsec_short",), "fail"),
        (("whsec_0123456789 abcdef",), "fail"),
        ((), "fail"),
    ],
)
def test_webhook_secrets(secrets: tuple[str, ...], outcome: str) -> None:
    assert check_secrets(secrets).outcome == outcome


@pytest.mark.parametrize(
    ("skew", "outcome"), [(0.0, "ok"), (-4.9, "ok"), (6.0, "warn"), (-59.0, "warn"), (61.0, "fail")]
)
def test_clock_skew(skew: float, outcome: str) -> None:
    assert check_skew(skew).outcome == outcome


def test_migrations_current_pending_edited_and_unknown() -> None:
    known = load_migrations()
    applied = [(m.version, m.name, m.checksum) for m in known]
    assert check_migrations(applied, known).outcome == "ok"
    pending = check_migrations(applied[:-1], known)
    assert pending.outcome == "fail"
    assert f"{known[-1].version:04d}_{known[-1].name}" in pending.detail
    edited = [*applied[:-1], (known[-1].version, known[-1].name, "0" * 64)]
    assert "differ" in check_migrations(edited, known).detail
    ahead = [*applied, (len(known) + 1, "future", "x")]
    assert "lacks" in check_migrations(ahead, known).detail


def test_topics() -> None:
    assert check_topics({"a": 3, "b": 1}, ["a", "b"]).outcome == "ok"
    missing = check_topics({"a": 3}, ["a", "b"])
    assert (missing.outcome, "b" in missing.detail) == ("fail", True)


def test_failure_kinds() -> None:
    assert failure_kind("internal_error") == "retryable"
    assert failure_kind("recipient_not_on_whatsapp") == "permanent"
    assert failure_kind(UNKNOWN_OUTCOME) == "unknown"
    assert failure_kind("api_anomaly") == "unknown"
    assert failure_kind("dispatch_error") == "unknown"


def test_retry_codes() -> None:
    assert retry_codes([], include_unknown=False) == RETRYABLE_CODES
    assert retry_codes([], include_unknown=True) == RETRYABLE_CODES | IN_DOUBT_CODES
    assert retry_codes(["recipient_blocked"], include_unknown=False) == {"recipient_blocked"}
    with pytest.raises(UsageError, match="--include-unknown"):
        retry_codes([UNKNOWN_OUTCOME], include_unknown=False)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (0, "0s"),
        (42.4, "42s"),
        (950, "15m 50s"),
        (3600, "1h"),
        (93_784, "1d 2h"),
        (86_400, "1d"),
        (float("inf"), "unknown"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_table_and_bar() -> None:
    lines = table(["status", "count", "pct"], [("pending", 1200, "40.00%"), ("read", 5, "0.17%")])
    assert lines == [
        "status   count     pct",
        "pending  1,200  40.00%",
        "read         5   0.17%",
    ]
    assert bar(0.5, 10) == "█████░░░░░"
    assert bar(1.5, 4, unicode=False) == "####"


def test_eta_from_the_recent_rates() -> None:
    tracker = RateTracker(window=60)
    assert tracker.eta(100, 100) is None
    tracker.add(0.0, 0, 100)
    tracker.add(10.0, 50, 50)  # 5 done and 5 drained a second
    assert tracker.eta(50, 50) == pytest.approx(10.0)
    assert tracker.eta(0, 0) == 0.0


def test_eta_after_a_burst_of_receipts_follows_the_sending_pace() -> None:
    tracker = RateTracker(window=60)
    tracker.add(0.0, 100, 700)
    tracker.add(10.0, 1_300, 500)  # 1,200 read receipts at once, but 20/s sent
    # 510 in progress at 120/s completion would say ~4 s; 500 pending at 20/s take 25 s.
    assert tracker.eta(510, 500) == pytest.approx(25.0)


def test_eta_after_the_first_burst_of_sends_follows_the_current_pace() -> None:
    tracker = RateTracker(window=60)
    tracker.add(0.0, 0, 2_000)
    tracker.add(5.0, 600, 1_400)  # a full token bucket: 120/s for a moment
    tracker.add(10.0, 700, 1_300)  # then the refill rate: 20/s
    assert tracker.eta(1_300, 1_300) == pytest.approx(65.0)


def test_no_eta_while_pending_recipients_do_not_drain() -> None:
    tracker = RateTracker(window=60)
    tracker.add(0.0, 10, 90)
    tracker.add(10.0, 20, 90)  # deferred to the next quota window
    assert tracker.eta(90, 90) is None
    tracker.add(100.0, 20, 90)  # and nothing completes for the whole window
    assert tracker.eta(90, 0) is None


def test_a_campaign_is_finished_only_with_every_chunk() -> None:
    assert Snapshot(10, 0, 2, 2, terminal=True).finished
    assert not Snapshot(10, 0, 1, 2, terminal=True).finished
    assert not Snapshot(10, 3, 2, 2, terminal=False).finished
