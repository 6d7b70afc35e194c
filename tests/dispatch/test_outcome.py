"""What each decision does to the ledger row's attempt count (consumer.dispatch.outcome)."""

from __future__ import annotations

import uuid

import pytest

from consumer.dispatch.outcome import row_result
from consumer.dispatch.policy import Accepted, Decision, Defer, GiveUp, Retry, Scope, Stop
from consumer.dispatch.store import DueRow

ROW = DueRow(uuid.uuid4(), "+628111222333", None, generation=0, attempts=3, uncertain_since=None)


@pytest.mark.parametrize(
    ("decision", "counted"),
    [
        (Accepted("msg_1"), 1),
        (GiveUp("invalid_phone_number"), 1),
        (Retry(after=1.0, code="http_503"), 1),
        (Retry(after=1.0, code="timeout", uncertain=True), 1),
        # not the recipient's doing: the budget, the tier window, a stop
        (Retry(after=1.0, code="rate_limit_exceeded", rate_limited=True), 0),
        (Defer(after=60.0, code="quota_exceeded"), 0),
        (Stop(Scope.SENDER, "phone_number_forbidden"), 0),
    ],
)
def test_only_the_recipients_own_tries_count_as_attempts(decision: Decision, counted: int) -> None:
    assert row_result(ROW, decision, 100.0, 99.0, None).attempted == counted
