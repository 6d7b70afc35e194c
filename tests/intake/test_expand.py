"""Expansion of one chunk into ledger rows: the functional core, table-driven and by property."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.intake.expand import OUTCOMES, LedgerRow, expand
from consumer.intake.handler import Rejected, prepare
from consumer.intake.header import header_of, unstorable_value
from consumer.intake.phone import normalize_phone
from consumer.intake.render import compile_template, render
from schemas.requests import Recipient, encode_request_event
from schemas.template import (
    Component,
    ImageParameter,
    MediaLink,
    PayloadParameter,
    Template,
    TextParameter,
)
from tests.intake.builders import OPTED_IN, designed_campaign, phone, request, template

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CAMPAIGN = uuid.UUID("c1f0e8b2-7d3a-4f6e-9a2b-3c4d5e6f7a8b")
VARS = {"first_name": "Budi", "discount": "20%"}


def rows_of(
    recipients: list[Recipient], *, suppressed: frozenset[str] = frozenset(), variables: bool = True
) -> list[LedgerRow]:
    event = request(CAMPAIGN, recipients, tmpl=template(variables=variables))
    return expand(event, suppressed=suppressed, now=NOW).rows()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+628111222333", "+628111222333"),
        ("  +62 811-1222-333 ", "+628111222333"),
        ("+62 (811) 1222.333", "+628111222333"),
        ("+1 415 555 0100", "+14155550100"),
        ("+39 06 1234 5678", "+390612345678"),  # Italian leading zero kept
        ("628111222333", None),  # no region is guessed without '+'
        ("08111222333", None),
        ("+6281", None),  # too short for the plan
        ("+999 1234567", None),  # no such country code
        ("+62 811 CALL ME", None),  # letters are refused, not mapped to digits
        ("+628111222333 ext. 12", None),
        ("\uff0b628111222333", None),  # full-width plus
        ("+\u0666\u0662\u0668\u0661\u0661\u0661\u0662\u0662\u0662", None),  # other digit scripts
        ("+628111222333\x00", None),
        ("", None),
    ],
)
def test_phone_normalisation(raw: str, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    ("recipient", "suppressed", "expected"),
    [
        (Recipient(phone="+628111222333", opted_in_at=OPTED_IN, variables=VARS), False,
         ("pending", None)),
        (Recipient(phone=" +62 811 1222 333", opted_in_at=OPTED_IN, variables=VARS), False,
         ("pending", None)),
        (Recipient(phone="+628111222333", variables=VARS), False, ("skipped", "not_opted_in")),
        (Recipient(phone="+628111222333", opted_in_at=NOW + timedelta(seconds=1), variables=VARS),
         False, ("skipped", "not_opted_in")),
        (Recipient(phone="+628111222333", opted_in_at=NOW, variables=VARS), False,
         ("pending", None)),
        (Recipient(phone="+628111222333", opted_in_at=OPTED_IN, variables=VARS), True,
         ("skipped", "suppressed")),
        # Suppression outranks a missing opt-in; both outrank a missing variable.
        (Recipient(phone="+628111222333", variables={}), True, ("skipped", "suppressed")),
        (Recipient(phone="+628111222333", variables={}), False, ("skipped", "not_opted_in")),
        (Recipient(phone="+628111222333", opted_in_at=OPTED_IN, variables={"first_name": "B"}),
         False, ("skipped", "missing_variable")),
        (Recipient(phone="+628111222333", opted_in_at=OPTED_IN,
                   variables={**VARS, "first_name": "a\x00b"}), False,
         ("skipped", "missing_variable")),
        (Recipient(phone="+628111222333", opted_in_at=OPTED_IN, variables={
            "first_name": " ", "discount": ""}), False, ("pending", None)),
        (Recipient(phone="not a phone", opted_in_at=OPTED_IN, variables=VARS), False,
         ("skipped", "invalid_phone")),
    ],
)  # fmt: skip
def test_one_recipient(recipient: Recipient, suppressed: bool, expected: tuple[str, str]) -> None:
    blocked = frozenset({"+628111222333"}) if suppressed else frozenset()
    [row] = rows_of([recipient], suppressed=blocked)
    assert (row.status, row.reason) == expected
    assert row.opted_in_at == recipient.opted_in_at


def test_invalid_phone_rows_are_keyed_by_the_trimmed_raw_text() -> None:
    [row] = rows_of([Recipient(phone="  0811 1222 333\x00 ", opted_in_at=OPTED_IN)])
    assert row == LedgerRow("0811 1222 333\ufffd", "skipped", "invalid_phone", None, OPTED_IN)


def test_first_occurrence_in_a_chunk_wins_and_repeats_count_as_duplicates() -> None:
    recipients = [
        Recipient(phone="+628111222333", variables=VARS),  # not opted in, first
        Recipient(phone="+62 811 1222 333", opted_in_at=OPTED_IN, variables=VARS),
        Recipient(phone="bad", opted_in_at=OPTED_IN),
        Recipient(phone=" bad ", opted_in_at=OPTED_IN),
    ]
    expansion = expand(request(CAMPAIGN, recipients), suppressed=frozenset(), now=NOW)
    assert [(r.phone, r.reason) for r in expansion.rows()] == [
        ("+628111222333", "not_opted_in"),
        ("bad", "invalid_phone"),
    ]
    assert expansion.counts["duplicate"] == 2


def test_components_are_rendered_per_row_only_when_the_template_has_variables() -> None:
    recipient = Recipient(phone=phone(1), opted_in_at=OPTED_IN, variables=VARS)
    [with_vars] = rows_of([recipient])
    [without] = rows_of([recipient], variables=False)
    assert msgspec.json.decode(with_vars.components or "") == [
        {"type": "body", "parameters": [{"type": "text", "text": "Hi Budi, 20% off"}]}
    ]
    assert without.components is None


def test_rendering_touches_text_and_payload_parameters_only() -> None:
    tmpl = Template(
        name="t",
        language="en",
        components=[
            Component(type="header", parameters=[
                ImageParameter(image=MediaLink(link="https://x.test/{{first_name}}.png"))]),
            Component(type="body", parameters=[
                TextParameter(text="{{first_name}}"), TextParameter(text="fixed")]),
            Component(type="button", sub_type="quick_reply", index="0",
                      parameters=[PayloadParameter(payload="stop-{{ first_name }}")]),
        ],
    )  # fmt: skip
    compiled = compile_template(tmpl)
    assert render(compiled, {"first_name": "Budi"}) == [
        {"type": "header", "parameters": [
            {"type": "image", "image": {"link": "https://x.test/{{first_name}}.png"}}]},
        {"type": "body", "parameters": [
            {"type": "text", "text": "Budi"}, {"type": "text", "text": "fixed"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "0",
         "parameters": [{"type": "payload", "payload": "stop-Budi"}]},
    ]  # fmt: skip
    assert render(compiled, {}) is None
    # The compiled template itself is never mutated by rendering.
    assert compiled.components[1]["parameters"][0]["text"] == "{{first_name}}"


recipients_strategy = st.lists(
    st.builds(
        Recipient,
        phone=st.one_of(
            st.integers(0, 30).map(phone),
            st.sampled_from(["bad", " bad", "+6281", "0811"]),
            st.integers(0, 30).map(lambda n: " " + phone(n)[:3] + " " + phone(n)[3:]),
        ),
        opted_in_at=st.one_of(st.none(), st.sampled_from([OPTED_IN, NOW + timedelta(days=1)])),
        variables=st.sampled_from([VARS, {"first_name": "x"}, {}]),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(recipients=recipients_strategy, suppressed=st.sets(st.integers(0, 30).map(phone)))
def test_one_row_per_distinct_phone_and_eligible_exactly_when_it_should(
    recipients: list[Recipient], suppressed: set[str]
) -> None:
    expansion = expand(request(CAMPAIGN, recipients), suppressed=frozenset(suppressed), now=NOW)
    rows = expansion.rows()
    keys = [row.phone for row in rows]
    assert len(keys) == len(set(keys))
    assert sum(expansion.counts.values()) == len(recipients)
    assert expansion.counts["duplicate"] == len(recipients) - len(rows)
    first: dict[str, Recipient] = {}
    for recipient in recipients:
        first.setdefault(normalize_phone(recipient.phone) or recipient.phone.strip(), recipient)
    eligible = {
        key
        for key, r in first.items()
        if normalize_phone(r.phone) is not None
        and key not in suppressed
        and r.opted_in_at is not None
        and r.opted_in_at <= NOW
        and {"first_name", "discount"} <= r.variables.keys()
    }
    assert {row.phone for row in rows if row.status == "pending"} == eligible
    assert set(expansion.counts) == set(OUTCOMES)


def test_designed_campaign_oracle_matches_the_expansion_of_its_first_chunk() -> None:
    # The integration tests' oracle and the pure core agree on a single chunk.
    design = designed_campaign(chunks=1, per_chunk=300, seed=7)
    [chunk] = design.chunks
    expansion = expand(chunk, suppressed=frozenset(design.suppressed), now=NOW)
    assert {r.phone: (r.status, r.reason) for r in expansion.rows()} == design.expected


EARLY = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))  # year 0 in UTC
LATE = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))  # year 10000 in UTC


@pytest.mark.parametrize(
    ("opted_in_at", "expected", "stored"),
    [
        (OPTED_IN, ("pending", None), OPTED_IN),
        (datetime(1, 1, 1, 5, tzinfo=timezone(timedelta(hours=5))), ("pending", None),
         datetime(1, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))),
        # Instants Python and asyncpg cannot put in UTC: no proof of consent, NULL stored.
        (EARLY, ("skipped", "not_opted_in"), None),
        (LATE, ("skipped", "not_opted_in"), None),
    ],
)  # fmt: skip
def test_an_opt_in_outside_the_utc_range_is_no_opt_in(
    opted_in_at: datetime, expected: tuple[str, str | None], stored: datetime | None
) -> None:
    [row] = rows_of([Recipient(phone="+628111222333", opted_in_at=opted_in_at, variables=VARS)])
    assert (row.status, row.reason, row.opted_in_at) == (*expected, stored)


@pytest.mark.parametrize(
    ("send_at", "problem"),
    [(None, False), (NOW, False), (EARLY, True), (LATE, True)],
)
def test_a_send_at_outside_the_utc_range_is_unstorable(
    send_at: datetime | None, problem: bool
) -> None:
    event = request(CAMPAIGN, [Recipient(phone="+628111222333")], send_at=send_at)
    prepared = prepare(encode_request_event(event))
    if problem:
        assert isinstance(prepared, Rejected)
        assert prepared.reason == "unstorable_value"
    else:
        assert not isinstance(prepared, Rejected)
    assert (unstorable_value(header_of(event)) is not None) == problem


@pytest.mark.parametrize(
    ("source", "stored"),
    [
        (None, None),
        ("checkout_form", "checkout_form"),
        ("crm\x00import", "crm\ufffdimport"),  # PostgreSQL text holds no NUL
    ],
)
@pytest.mark.parametrize("opted_in_at", [OPTED_IN, None])
def test_the_opt_in_source_is_kept_on_every_row_as_sent(
    source: str | None, stored: str | None, opted_in_at: datetime | None
) -> None:
    [row] = rows_of(
        [
            Recipient(
                phone="+628111222333",
                opted_in_at=opted_in_at,
                opt_in_source=source,
                variables=VARS,
            )
        ]
    )
    # Eligible or skipped (no opt-in), the row keeps where the request said consent came from.
    assert row.status == ("pending" if opted_in_at else "skipped")
    assert (row.opted_in_at, row.opt_in_source) == (opted_in_at, stored)
