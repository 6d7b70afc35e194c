"""The pure parts of publish: the template spec, chunking and the fit plan."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from cli.chunks import build_chunks
from cli.errors import UsageError
from cli.plan import fit_plan
from cli.templates import load_template, template_variables
from consumer.dispatch.tiers import UNLIMITED
from schemas.requests import BroadcastRequested, Recipient, Sender, decode_request_event
from schemas.template import Template, TextParameter

TEMPLATE = Template(name="promo_flash_sale", language="id_ID")
SENDER = Sender(phone_number_id="106540352242922")


def recipients(count: int, variable_bytes: int = 0) -> list[Recipient]:
    return [
        Recipient(
            phone=f"+62812{i:07d}", variables={"v": "x" * variable_bytes} if variable_bytes else {}
        )
        for i in range(count)
    ]


def test_chunks_keep_file_order_and_count_themselves() -> None:
    campaign = uuid.uuid4()
    audience = recipients(12)
    chunks = build_chunks(
        campaign_id=campaign, sender=SENDER, template=TEMPLATE, recipients=audience, chunk_size=5
    )
    assert [(c.start, c.stop) for c in chunks] == [(0, 5), (5, 10), (10, 12)]
    events = [decode_request_event(c.value) for c in chunks]
    assert all(isinstance(e, BroadcastRequested) for e in events)
    requested = [e for e in events if isinstance(e, BroadcastRequested)]
    assert [(e.chunk.index, e.chunk.count) for e in requested] == [(0, 3), (1, 3), (2, 3)]
    assert [r.phone for e in requested for r in e.recipients] == [r.phone for r in audience]
    assert {e.campaign_id for e in requested} == {campaign}


def test_a_chunk_over_the_byte_budget_is_halved_until_it_fits() -> None:
    audience = recipients(40, variable_bytes=1000)
    chunks = build_chunks(
        campaign_id=uuid.uuid4(),
        sender=SENDER,
        template=TEMPLATE,
        recipients=audience,
        chunk_size=40,
        max_bytes=12_000,
    )
    assert all(len(c.value) <= 12_000 for c in chunks)
    assert len(chunks) > 3
    assert sum(c.stop - c.start for c in chunks) == 40
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_chunking_is_deterministic() -> None:
    campaign, audience = uuid.uuid4(), recipients(30, variable_bytes=300)

    def values() -> list[bytes]:
        chunks = build_chunks(
            campaign_id=campaign,
            sender=SENDER,
            template=TEMPLATE,
            recipients=audience,
            chunk_size=7,
            max_bytes=5_000,
        )
        return [c.value for c in chunks]

    assert values() == values()


def test_no_recipients_or_a_bad_chunk_size_is_refused() -> None:
    with pytest.raises(UsageError, match="no recipients"):
        build_chunks(campaign_id=uuid.uuid4(), sender=SENDER, template=TEMPLATE, recipients=[])
    with pytest.raises(UsageError, match="--chunk-size"):
        build_chunks(
            campaign_id=uuid.uuid4(),
            sender=SENDER,
            template=TEMPLATE,
            recipients=recipients(1),
            chunk_size=10_001,
        )


@pytest.mark.parametrize(
    ("eligible", "tier", "per_minute", "windows", "eta"),
    [
        # 50k on a 10k tier: five windows; the last 10k go out 4 days in, at 10/s.
        (50_000, 10_000, 600, 5, 4 * 86_400 + 1_000),
        # One window: the write rate alone decides.
        (900, 1_000, 60, 1, 900),
        (1_000, 1_000, 60, 1, 1_000),
        # The last window carries only the remainder.
        (1_001, 1_000, 60, 2, 86_400 + 1),
        (5_000, UNLIMITED, 6_000, 1, 50),
        (0, 250, 60, 0, 0),
        (500, 250, 1, 2, 86_400 + 250 * 60),
    ],
)
def test_fit_plan(eligible: int, tier: int, per_minute: int, windows: int, eta: float) -> None:
    plan = fit_plan(eligible, tier=tier, write_per_minute=per_minute, window_seconds=86_400)
    assert plan.windows == windows
    assert plan.eta_seconds == pytest.approx(eta)


def test_a_rate_slower_than_the_window_binds_instead_of_the_quota() -> None:
    # 250 a window at 1/min take 250 min, longer than a 1 h window: the rate decides.
    plan = fit_plan(500, tier=250, write_per_minute=1, window_seconds=3_600)
    assert plan.windows == 2
    assert plan.eta_seconds == pytest.approx(500 * 60)


def test_fit_plan_without_the_facts() -> None:
    plan = fit_plan(100, tier=None, write_per_minute=None, window_seconds=60)
    assert (plan.windows, plan.eta_seconds, plan.concurrency) == (None, None, None)
    rate_only = fit_plan(120, tier=None, write_per_minute=60, window_seconds=60)
    assert rate_only.send_seconds == 120
    assert rate_only.eta_seconds is None
    assert fit_plan(10, tier=10_000, write_per_minute=None, window_seconds=60).concurrency == 20


def test_template_from_flags_and_file(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(
        '{"name": "other", "language": "en", "components": ['
        '{"type": "header", "parameters": [{"type": "text", "text": "Hi"}]},'
        '{"type": "body", "parameters": [{"type": "text", "text": "old"}]}]}'
    )
    template = load_template(
        name="promo_flash_sale",
        language=None,
        body_params=["{{first_name}}", "{{ city }}"],
        file=spec,
    )
    assert (template.name, template.language) == ("promo_flash_sale", "en")
    assert [c.type for c in template.components] == ["header", "body"]
    assert template.components[1].parameters == [
        TextParameter(text="{{first_name}}"),
        TextParameter(text="{{ city }}"),
    ]
    assert template_variables(template) == {"first_name", "city"}


@pytest.mark.parametrize(
    ("name", "language", "message"),
    [
        (None, "id_ID", "no template"),
        ("promo", None, "no template language"),
        ("Promo Flash", "id_ID", "invalid template"),
        ("promo", "indonesian", "invalid template"),
    ],
)
def test_a_bad_template_is_refused(name: str | None, language: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_template(name=name, language=language, body_params=[], file=None)


def test_an_unreadable_template_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(UsageError, match="not JSON"):
        load_template(name=None, language=None, body_params=[], file=bad)
    with pytest.raises(UsageError, match="cannot read"):
        load_template(name=None, language=None, body_params=[], file=tmp_path / "missing.json")
