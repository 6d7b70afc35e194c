"""What chunks of a campaign must agree on, and pause/resume/cancel as a pure state machine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.intake import control
from consumer.intake.control import ACTIVE, CampaignState, Command
from consumer.intake.header import (
    StoredHeader,
    chunk_digest,
    conflict,
    header_of,
    unstorable_text,
)
from schemas.requests import (
    BroadcastRequested,
    Recipient,
    Sender,
    decode_request_event,
    encode_request_event,
)
from schemas.template import Component, Template, TextParameter
from tests.intake.builders import OPTED_IN, phone, request, template

CAMPAIGN = uuid.uuid4()
RECIPIENTS = [Recipient(phone=phone(1), opted_in_at=OPTED_IN)]
SEND_AT = datetime(2026, 3, 1, 9, tzinfo=UTC)


def stored(**changes: object) -> StoredHeader:
    header = header_of(request(CAMPAIGN, RECIPIENTS, count=4, send_at=SEND_AT))
    values = {"fingerprint": header.fingerprint, "send_at": SEND_AT, "chunk_count": 4, **changes}
    return StoredHeader(**values)  # type: ignore[arg-type]


def test_fingerprint_ignores_key_order_and_unknown_fields() -> None:
    event = request(CAMPAIGN, RECIPIENTS)
    raw = msgspec.json.decode(encode_request_event(event))
    reordered = {key: raw[key] for key in reversed(list(raw))}
    reordered["template"] = {**{k: raw["template"][k] for k in reversed(list(raw["template"]))}}
    reordered["template"]["future_field"] = 1
    again = decode_request_event(msgspec.json.encode(reordered))
    assert isinstance(again, BroadcastRequested)
    assert header_of(again).fingerprint == header_of(event).fingerprint
    assert chunk_digest(again) == chunk_digest(event)


@pytest.mark.parametrize(
    ("incoming", "agrees"),
    [
        (request(CAMPAIGN, [Recipient(phone=phone(9))], index=3, count=4, send_at=SEND_AT), True),
        (request(CAMPAIGN, RECIPIENTS, count=5, send_at=SEND_AT), False),
        (request(CAMPAIGN, RECIPIENTS, count=4), False),
        (request(CAMPAIGN, RECIPIENTS, count=4, send_at=SEND_AT,
                 sender=Sender(auto=True)), False),
        (request(CAMPAIGN, RECIPIENTS, count=4, send_at=SEND_AT,
                 tmpl=template(variables=False)), False),
        (request(CAMPAIGN, RECIPIENTS, count=4, send_at=SEND_AT.astimezone(
            datetime.now().astimezone().tzinfo)), True),  # same instant, other offset
    ],
)  # fmt: skip
def test_chunks_must_agree_on_sender_template_count_and_send_at(
    incoming: object, agrees: bool
) -> None:
    assert (conflict(stored(), header_of(incoming)) is None) is agrees  # type: ignore[arg-type]


def test_auto_sender_spec_and_nul_in_template_text() -> None:
    auto = header_of(request(CAMPAIGN, RECIPIENTS, sender=Sender(auto=True)))
    assert auto.sender_spec == "auto"
    bad = Template(name="t", language="en", components=[
        Component(type="body", parameters=[TextParameter(text="a\x00")])])  # fmt: skip
    assert unstorable_text(header_of(request(CAMPAIGN, RECIPIENTS, tmpl=bad))) is not None
    assert unstorable_text(auto) is None


PAUSED = CampaignState("paused", "requested")
CANCELLED = CampaignState("cancelled", "requested")
STOPPED = CampaignState("stopped", "template_disabled")
SENDER_PAUSED = CampaignState("paused", "sender_disconnected")


@pytest.mark.parametrize(
    ("before", "command", "reason", "sender_problem", "after"),
    [
        (ACTIVE, "pause", None, None, PAUSED),
        (ACTIVE, "pause", "stock ran out", None, CampaignState("paused", "stock ran out")),
        (PAUSED, "pause", "again", None, PAUSED),
        (PAUSED, "resume", None, None, ACTIVE),
        (PAUSED, "resume", None, "sender_disconnected", SENDER_PAUSED),
        (SENDER_PAUSED, "resume", None, None, ACTIVE),
        (ACTIVE, "resume", None, "sender_unknown", ACTIVE),
        (STOPPED, "resume", None, None, ACTIVE),
        (STOPPED, "pause", None, None, STOPPED),
        (ACTIVE, "cancel", None, None, CANCELLED),
        (PAUSED, "cancel", "done", None, CampaignState("cancelled", "done")),
        (CANCELLED, "resume", None, None, CANCELLED),
        (CANCELLED, "pause", None, None, CANCELLED),
        (CANCELLED, "cancel", "twice", None, CANCELLED),
        (ACTIVE, "pause", "nul\x00", None, CampaignState("paused", "nul\ufffd")),
    ],
)
def test_control_transitions(
    before: CampaignState,
    command: Command,
    reason: str | None,
    sender_problem: str | None,
    after: CampaignState,
) -> None:
    assert control.apply(before, command, reason=reason, sender_problem=sender_problem) == after


commands = st.lists(st.tuples(st.sampled_from(["pause", "resume", "cancel"]), st.none()))


@given(commands=commands, problem=st.sampled_from([None, "sender_unknown"]))
def test_fold_is_deterministic_and_cancel_is_final(
    commands: list[tuple[Command, None]], problem: str | None
) -> None:
    start = control.initial_state(problem)
    state = control.fold(start, commands, sender_problem=problem)
    assert state == control.fold(start, commands, sender_problem=problem)
    if any(command == "cancel" for command, _ in commands):
        assert state.cancelled
    # Re-applying the last command (a redelivery) changes nothing.
    if commands:
        last, reason = commands[-1]
        assert control.apply(state, last, reason=reason, sender_problem=problem) == state
