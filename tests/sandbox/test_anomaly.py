"""Anomalous answers and delivered-after-failed, planned and rendered without HTTP."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import msgspec
import pytest

from sandbox.anomaly import HTML_PAGE, accepted_answer, refusal
from sandbox.catalog import FAILURES
from sandbox.config import ANOMALY_KINDS, Anomalies, ConfigError, Delays, Faults, parse_config
from sandbox.faults import FaultCounters, plan_faults
from sandbox.outcome import Plan, delivered_after_failed
from sandbox.timeline import build_timeline, status_at
from sandbox.wire import MessageView

TRUE_ID = "msg_01HZY0000000000000000000AB"
EARLIER_ID = "msg_01HZX0000000000000000000CD"
VIEW = MessageView(
    id=TRUE_ID,
    status="pending",
    phone_number_id="106540352242922",
    to="+628111222333",
    type="template",
    template=None,
    provider_id=None,
    error=None,
    created_at="2024-05-23T16:00:00.000Z",
    updated_at="2024-05-23T16:00:00.000Z",
)


def faults(**anomalies: Any) -> Faults:
    return msgspec.convert({"anomalies": anomalies}, Faults)


def test_the_anomaly_countdown_fires_next_times_then_stops() -> None:
    options = faults(next=3, kinds=["html"])
    counters = FaultCounters(anomalies=3)
    rng = random.Random(0)
    drawn = []
    for _ in range(5):
        plan, counters = plan_faults(options, counters, rng)
        drawn.append(plan.anomaly)
    assert drawn == ["html", "html", "html", None, None]
    assert counters == FaultCounters()


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (None, set(ANOMALY_KINDS)),  # the default list is every kind
        (["nul_id"], {"nul_id"}),
        (["reused_id", "unknown_code"], {"reused_id", "unknown_code"}),
    ],
)
def test_a_firing_anomaly_is_drawn_from_its_kinds(
    kinds: list[str] | None, expected: set[str]
) -> None:
    options = faults(probability=1.0) if kinds is None else faults(probability=1.0, kinds=kinds)
    rng = random.Random(7)
    seen = {plan_faults(options, FaultCounters(), rng)[0].anomaly for _ in range(400)}
    assert seen == expected


def test_the_draw_is_reproducible_under_a_seed() -> None:
    options = faults(probability=0.5)

    def run(seed: int) -> list[str | None]:
        rng = random.Random(seed)
        return [plan_faults(options, FaultCounters(), rng)[0].anomaly for _ in range(50)]

    assert run(3) == run(3)
    assert None in run(3)


@pytest.mark.parametrize(
    ("patch", "send", "fires"),
    [
        # Anomalies are about a send's answer: a GET (scope "all") neither gets one nor counts.
        ({"anomalies": {"next": 1}}, False, False),
        ({"anomalies": {"next": 1}}, True, True),
        # A server error answers first: the anomaly countdown is not used up.
        ({"anomalies": {"next": 1}, "server_errors": {"next": 1}}, True, False),
        ({"anomalies": {"next": 1}, "dropped_connections": {"next": 1}}, True, False),
        # Processed first, then dropped: the anomaly is what the key stores.
        (
            {
                "anomalies": {"next": 1},
                "dropped_connections": {"next": 1, "after_processing": True},
            },
            True,
            True,
        ),
    ],
)
def test_where_anomalies_apply(patch: dict[str, Any], send: bool, fires: bool) -> None:
    options = msgspec.convert(patch, Faults)
    counters = FaultCounters(
        anomalies=1,
        server_errors=options.server_errors.next,
        dropped_connections=options.dropped_connections.next,
    )
    plan, after = plan_faults(options, counters, random.Random(0), send=send)
    assert (plan.anomaly is not None) == fires
    assert after.anomalies == (0 if fires else 1)


def test_switching_anomalies_on_keeps_the_other_faults_draws() -> None:
    base = {"late_answers": {"probability": 0.5}, "latency": {"jitter": "uniform", "jitter_ms": 5}}
    with_anomalies = {**base, "anomalies": {"probability": 0.5}}

    def lates(document: dict[str, Any]) -> list[float]:
        options, rng = msgspec.convert(document, Faults), random.Random(1)
        plans = [plan_faults(options, FaultCounters(), rng)[0] for _ in range(30)]
        return [plan.late for plan in plans]

    # The anomaly draw comes last, so the first plan's late/latency are unchanged.
    assert lates(base)[0] == lates(with_anomalies)[0]


OPTIONS = Anomalies(oversized_bytes=4096)


@pytest.mark.parametrize(
    ("kind", "earlier", "answered_kind", "content_type", "answered_id"),
    [
        ("reused_id", EARLIER_ID, "reused_id", b"application/json", EARLIER_ID),
        ("reused_id", None, "missing_id", b"application/json", None),
        ("missing_id", EARLIER_ID, "missing_id", b"application/json", None),
        ("non_json", None, "non_json", b"text/plain; charset=utf-8", None),
        ("html", None, "html", b"text/html; charset=utf-8", None),
        ("oversized", None, "oversized", b"application/json", TRUE_ID),
        ("nul_id", None, "nul_id", b"application/json", TRUE_ID + "\x00"),
    ],
)
def test_each_processed_kind_renders_its_answer(
    kind: Any, earlier: str | None, answered_kind: str, content_type: bytes, answered_id: str | None
) -> None:
    odd = accepted_answer(kind, VIEW, "req_1", status=202, earlier_id=earlier, options=OPTIONS)
    assert (odd.kind, odd.status, odd.content_type, odd.answered_id) == (
        answered_kind,
        202,
        content_type,
        answered_id,
    )
    if content_type != b"application/json":
        assert odd.body in {b"OK", HTML_PAGE}
        return
    document = msgspec.json.decode(odd.body)
    assert document["request_id"] == "req_1"
    assert document["data"].get("id") == answered_id
    assert document["data"]["to"] == VIEW.to  # the rest of the message is the true one


def test_oversized_is_padded_to_exactly_the_size_and_never_cut() -> None:
    odd = accepted_answer("oversized", VIEW, "req_1", status=200, earlier_id=None, options=OPTIONS)
    assert len(odd.body) == 4096
    assert msgspec.json.decode(odd.body)["padding"].strip("x") == ""
    tiny = accepted_answer(
        "oversized",
        VIEW,
        "req_1",
        status=200,
        earlier_id=None,
        options=Anomalies(oversized_bytes=1),
    )
    assert msgspec.json.decode(tiny.body)["data"]["id"] == TRUE_ID
    assert Anomalies().oversized_bytes == 2 * 1024 * 1024


def test_nul_id_is_a_json_escape_postgres_text_cannot_hold() -> None:
    odd = accepted_answer("nul_id", VIEW, "req_1", status=200, earlier_id=None, options=OPTIONS)
    assert TRUE_ID.encode() + b"\\u0000" in odd.body


@pytest.mark.parametrize(
    ("options", "status", "code", "kind"),
    [
        (Anomalies(), 400, "unexpected_condition", "invalid_request_error"),
        (
            Anomalies(unknown_status=418, unknown_code="teapot"),
            418,
            "teapot",
            "invalid_request_error",
        ),
        (Anomalies(unknown_status=403, unknown_code="x"), 403, "x", "permission_error"),
    ],
)
def test_unknown_code_is_an_error_envelope(
    options: Anomalies, status: int, code: str, kind: str
) -> None:
    odd = refusal(options, "req_9")
    assert (odd.kind, odd.status, odd.answered_id) == ("unknown_code", status, None)
    error = msgspec.json.decode(odd.body)["error"]
    assert (error["code"], error["type"], error["request_id"]) == (code, kind, "req_9")


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"kinds": []}, "at least one kind"),
        ({"kinds": ["teapot"]}, "kinds"),
        ({"unknown_status": 500}, "unknown_status"),
        ({"unknown_code": ""}, "unknown_code"),
        ({"oversized_bytes": 0}, "oversized_bytes"),
        ({"probability": 2}, "probability"),
    ],
)
def test_bad_anomaly_options_are_refused(patch: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_config({"faults": {"anomalies": patch}})


@pytest.mark.parametrize(
    ("probability", "expected"),
    [(0.0, 0), (1.0, 1000)],
)
def test_delivered_after_failed_extremes(probability: float, expected: int) -> None:
    hits = sum(
        delivered_after_failed(
            probability,
            seed=0,
            phone_number_id="1",
            to=f"+62811{n:07d}",
            template="t",
            ordinal=0,
        )
        for n in range(1000)
    )
    assert hits == expected


def test_delivered_after_failed_is_a_reproducible_share() -> None:
    def draws(seed: int) -> list[bool]:
        return [
            delivered_after_failed(
                0.3, seed=seed, phone_number_id="1", to=f"+62811{n:07d}", template="t", ordinal=0
            )
            for n in range(2000)
        ]

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)
    assert 500 <= Counter(draws(5))[True] <= 700


DELAYS = Delays(sent=1.0, delivered=2.0, read=4.0, failed=3.0)


@pytest.mark.parametrize(
    ("at", "status"),
    [
        (102.0, "pending"),
        (103.0, "failed"),
        (107.9, "failed"),
        (108.0, "delivered"),
        (1e9, "delivered"),
    ],
)
def test_a_failed_then_delivered_timeline(at: float, status: str) -> None:
    plan = Plan("failed", FAILURES["recipient_blocked"], delivered_after_failed=True)
    timeline = build_timeline(plan, 100.0, DELAYS, 1.0, redelivery_delay=5.0)
    assert timeline.steps == (("failed", 103.0), ("delivered", 108.0))
    assert status_at(timeline, at)[0] == status


def test_the_redelivery_delay_is_scaled_and_ignored_without_the_flag() -> None:
    flagged = Plan("failed", FAILURES["recipient_blocked"], delivered_after_failed=True)
    steps = build_timeline(flagged, 100.0, DELAYS, 10.0, redelivery_delay=5.0).steps
    assert [status for status, _ in steps] == ["failed", "delivered"]
    assert [at for _, at in steps] == pytest.approx([100.3, 100.8])
    plain = Plan("failed", FAILURES["recipient_blocked"])
    assert build_timeline(plain, 100.0, DELAYS, 1.0, redelivery_delay=5.0).steps == (
        ("failed", 103.0),
    )
