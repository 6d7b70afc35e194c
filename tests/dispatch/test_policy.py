"""Every synchronous and asynchronous outcome of kirim-api.md maps to the documented action."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.dispatch.policy import (
    Accepted,
    Answer,
    Decision,
    Defer,
    GiveUp,
    Retry,
    RetryPolicy,
    Scope,
    Stop,
    anomaly_of,
    async_code_of,
    classify_async_failure,
    classify_response,
    classify_transport_error,
)

POLICY = RetryPolicy()


def sync(status: int, code: str | None = None, retry_after: float | None = None) -> Decision:
    return classify_response(Answer(status, code, retry_after), 1, POLICY, random.Random(1))


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "invalid_request", GiveUp("invalid_request")),
        (400, "missing_required_field", GiveUp("missing_required_field")),
        (400, "invalid_field_value", GiveUp("invalid_field_value")),
        (400, "invalid_phone_number", GiveUp("invalid_phone_number")),
        (400, "invalid_template_name", Stop(Scope.CAMPAIGN, "invalid_template_name")),
        (401, "invalid_api_key", Stop(Scope.ORGANISATION, "invalid_api_key")),
        (401, "expired_api_key", Stop(Scope.ORGANISATION, "expired_api_key")),
        (403, "phone_number_forbidden", Stop(Scope.SENDER, "phone_number_forbidden")),
        (404, "resource_not_found", Stop(Scope.SENDER, "resource_not_found")),
        (422, "idempotency_key_reuse", GiveUp("idempotency_key_reuse")),
        (409, "idempotency_conflict", GiveUp("idempotency_conflict")),
        (
            422,
            "account_not_connected",
            Stop(Scope.SENDER, "account_not_connected", resumes_automatically=True),
        ),
        # Unknown codes fall back on the HTTP class.
        (400, "brand_new_code", GiveUp("brand_new_code")),
        (422, "brand_new_code", GiveUp("brand_new_code")),
        (401, "brand_new_code", Stop(Scope.ORGANISATION, "brand_new_code")),
        (403, None, Stop(Scope.SENDER, "http_403")),
        (404, None, Stop(Scope.SENDER, "http_404")),
        (418, None, GiveUp("http_418")),
    ],
)
def test_final_synchronous_answers(status: int, code: str | None, expected: Decision) -> None:
    assert sync(status, code) == expected


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "internal_error"),
        (502, "whatsapp_upstream_error"),
        (503, None),
        (504, "brand_new_code"),
        (408, None),
    ],
)
def test_server_errors_retry_with_backoff(status: int, code: str | None) -> None:
    decision = sync(status, code)
    assert isinstance(decision, Retry)
    assert not decision.uncertain
    assert not decision.rate_limited
    assert 0 <= decision.after <= POLICY.base_seconds


def test_in_progress_retries_later_with_the_same_key() -> None:
    decision = sync(409, "idempotency_in_progress")
    assert decision == Retry(after=POLICY.in_progress_seconds, code="idempotency_in_progress")


def test_rate_limit_waits_retry_after_plus_jitter() -> None:
    decision = sync(429, "rate_limit_exceeded", retry_after=2.0)
    assert isinstance(decision, Retry)
    assert decision.rate_limited
    assert 2.0 <= decision.after <= 2.2


def test_rate_limits_never_use_up_the_recipients_attempts() -> None:
    # However many attempts the row has made, a 429 is a wait, never a give-up.
    for attempt in (1, POLICY.max_attempts, POLICY.max_attempts + 50):
        answer = Answer(429, code="rate_limit_exceeded", retry_after=1.0)
        decision = classify_response(answer, attempt, POLICY, random.Random(0))
        assert isinstance(decision, Retry)
        assert decision.rate_limited


def test_synchronous_quota_exceeded_defers() -> None:
    decision = sync(429, "quota_exceeded", retry_after=30.0)
    assert isinstance(decision, Defer)
    assert decision.code == "quota_exceeded"
    assert 30.0 <= decision.after <= 33.0


@pytest.mark.parametrize("status", [200, 201, 202, 299])
def test_any_2xx_with_an_id_is_accepted(status: int) -> None:
    answer = Answer(status, message_id="msg_01HZX")
    assert classify_response(answer, 1, POLICY, random.Random(0)) == Accepted("msg_01HZX")


def test_a_2xx_without_an_id_is_retried_as_uncertain_then_an_anomaly() -> None:
    decision = sync(200)
    assert isinstance(decision, Retry)
    assert decision.code == "api_anomaly"
    assert decision.uncertain
    last = POLICY.anomaly_attempts
    answer = Answer(200)
    assert classify_response(answer, last, POLICY, random.Random(0)) == GiveUp("api_anomaly")


@pytest.mark.parametrize(
    ("answer", "anomaly"),
    [
        (Answer(200, anomaly="unreadable_answer"), "unreadable_answer"),
        (Answer(200), "missing_message_id"),
        (Answer(302, anomaly="unexpected_status"), "unexpected_status"),
        (Answer(400, "frobnicated"), "unknown_error_code"),
        (Answer(418), "unknown_error_code"),
        (Answer(400, "invalid_phone_number"), None),
        (Answer(500, "frobnicated"), None),
        (Answer(200, message_id="msg_1"), None),
    ],
)
def test_anomalies_are_named(answer: Answer, anomaly: str | None) -> None:
    assert anomaly_of(answer) == anomaly


def test_an_unknown_client_error_code_is_permanent_for_the_recipient() -> None:
    assert sync(400, "frobnicated") == GiveUp("frobnicated")


def test_transport_errors_retry_as_uncertain() -> None:
    decision = classify_transport_error("timeout", 1, POLICY, random.Random(0))
    assert isinstance(decision, Retry)
    assert decision.uncertain


def test_retries_are_bounded() -> None:
    rng = random.Random(0)
    last = POLICY.max_attempts
    assert classify_response(Answer(500), last, POLICY, rng) == GiveUp("retries_exhausted")
    assert classify_transport_error("timeout", last, POLICY, rng) == GiveUp("retries_exhausted")


@given(attempt=st.integers(min_value=1, max_value=100), seed=st.integers())
def test_backoff_is_bounded_and_non_negative(attempt: int, seed: int) -> None:
    wait = POLICY.backoff(attempt, random.Random(seed))
    assert 0 <= wait <= min(POLICY.max_seconds, POLICY.base_seconds * 2 ** (attempt - 1))


@pytest.mark.parametrize(
    ("code", "provider", "expected"),
    [
        ("recipient_not_on_whatsapp", 131026, GiveUp("recipient_not_on_whatsapp", suppress=True)),
        ("recipient_blocked", 1013, GiveUp("recipient_blocked", suppress=True)),
        ("template_paused", 132015, Stop(Scope.CAMPAIGN, "template_paused")),
        ("template_disabled", 132016, Stop(Scope.CAMPAIGN, "template_disabled")),
        ("template_param_count_mismatch", 132000, GiveUp("template_param_count_mismatch")),
        ("template_param_format_mismatch", 132001, GiveUp("template_param_format_mismatch")),
        ("outside_24h_window", 131047, GiveUp("outside_24h_window")),
        ("marketing_experiment", 130472, GiveUp("marketing_experiment")),
        ("payment_required", 131042, Stop(Scope.ORGANISATION, "payment_required")),
        # Kirim's published table lacks these names: Meta's code decides.
        (None, 1006, GiveUp("recipient_not_on_whatsapp", suppress=True)),
        ("some_wrapper_code", 132016, Stop(Scope.CAMPAIGN, "template_disabled")),
        (None, 131042, Stop(Scope.ORGANISATION, "payment_required")),
        # Unknown everything: permanent for the recipient, retryable by an operator.
        ("mystery", 999999, GiveUp("mystery")),
        (None, None, GiveUp("unknown_error")),
    ],
)
def test_asynchronous_failures(code: str | None, provider: int | None, expected: Decision) -> None:
    assert classify_async_failure(code, provider, 0, POLICY, random.Random(0)) == expected


@pytest.mark.parametrize(
    ("code", "provider", "minimum"),
    [
        ("spam_rate_limited", 131048, POLICY.spam_rate_seconds),
        ("ecosystem_engagement", 131049, 86_400.0),
        ("pair_rate_limited", 131056, 4.0),
        ("throughput_limited", 130429, 2.0),
        (None, 131049, 86_400.0),
    ],
)
def test_asynchronous_slow_downs_retry_later(
    code: str | None, provider: int, minimum: float
) -> None:
    decision = classify_async_failure(code, provider, 0, POLICY, random.Random(0))
    assert isinstance(decision, Retry)
    assert decision.after >= minimum


def test_pair_rate_backs_off_four_to_the_n() -> None:
    waits = [
        classify_async_failure("pair_rate_limited", 131056, generation, POLICY, random.Random(0))
        for generation in range(3)
    ]
    assert [w.after >= 4 ** (g + 1) for g, w in enumerate(waits) if isinstance(w, Retry)] == [
        True,
        True,
        True,
    ]


def test_asynchronous_quota_exceeded_defers_not_fails() -> None:
    decision = classify_async_failure("quota_exceeded", 131048, 0, POLICY, random.Random(0))
    assert isinstance(decision, Defer)
    # Meta's 131048 alone is read as quota (the documented default form).
    assert async_code_of(None, 131048) == "quota_exceeded"


def test_upstream_errors_retry_a_few_times_then_give_up() -> None:
    rng = random.Random(0)
    outcomes = [
        classify_async_failure("whatsapp_upstream_error", 131000, generation, POLICY, rng)
        for generation in range(POLICY.upstream_async_attempts)
    ]
    assert all(isinstance(o, Retry) for o in outcomes[:-1])
    assert outcomes[-1] == GiveUp("whatsapp_upstream_error")


@pytest.mark.parametrize(
    ("code", "provider_code", "name"),
    [
        # Kirim's catch-all yields to a Meta code its table does not name
        ("whatsapp_upstream_error", 131049, "ecosystem_engagement"),
        ("whatsapp_upstream_error", 131042, "payment_required"),
        ("whatsapp_upstream_error", 131056, "pair_rate_limited"),
        ("whatsapp_upstream_error", 130429, "throughput_limited"),
        ("whatsapp_upstream_error", 131000, "whatsapp_upstream_error"),
        ("whatsapp_upstream_error", 999999, "whatsapp_upstream_error"),
        ("whatsapp_upstream_error", None, "whatsapp_upstream_error"),
        # a specific Kirim code is taken as it is
        ("recipient_blocked", 131049, "recipient_blocked"),
        ("quota_exceeded", 131048, "quota_exceeded"),
        ("spam_rate_limited", 131048, "spam_rate_limited"),
        # unknown Kirim codes go by Meta's, else stay as they are
        ("meta_said_no", 131049, "ecosystem_engagement"),
        ("meta_said_no", None, "meta_said_no"),
        (None, 7, "provider_7"),
        (None, None, "unknown_error"),
    ],
)
def test_async_failures_are_named_by_the_most_specific_code(
    code: str | None, provider_code: int | None, name: str
) -> None:
    assert async_code_of(code, provider_code) == name


def test_an_upstream_error_that_is_a_payment_failure_stops_every_sender() -> None:
    decision = classify_async_failure(
        "whatsapp_upstream_error", 131042, 0, POLICY, random.Random(0)
    )
    assert isinstance(decision, Stop)
    assert decision.scope is Scope.ORGANISATION
