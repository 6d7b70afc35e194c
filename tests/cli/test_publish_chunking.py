"""The pure core of a streamed publish: packing, the preview's tally, the digest set, the meter."""

from __future__ import annotations

import io
import itertools
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.chunks import MIN_CHUNK_BYTES, Budget, Campaign, Packed, Packer, decode_body
from cli.errors import UsageError
from cli.meter import Meter, progress_text
from cli.spool import Spool
from cli.tally import DigestSet, Tally
from consumer.intake.expand import expand, normalize_recipients
from schemas.requests import (
    BroadcastRequested,
    Chunk,
    Recipient,
    Sender,
    decode_request_event,
    encode_request_event,
)
from schemas.template import Component, Template, TextParameter

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OPTED = datetime(2026, 1, 5, 10, tzinfo=UTC)
TEMPLATE = Template(
    name="promo_flash_sale",
    language="id_ID",
    components=[Component(type="body", parameters=[TextParameter(text="{{name}}")])],
)
CAMPAIGN = Campaign(uuid.uuid4(), Sender(phone_number_id="106540352242922"), TEMPLATE)

recipients_st = st.lists(
    st.builds(
        Recipient,
        phone=st.sampled_from(["+628123000001", "+628123000002", "+628123000003", "0812", "+1"]),
        opted_in_at=st.sampled_from([None, OPTED, datetime(2027, 1, 1, tzinfo=UTC)]),
        variables=st.dictionaries(
            st.sampled_from(["name", "city"]),
            st.text(alphabet='ab\u00e9\u4e2d\n"\\', max_size=400),
            max_size=2,
        ),
    ),
    max_size=60,
)


def pack(recipients: list[Recipient], budget: Budget) -> list[Packed]:
    packer = Packer(CAMPAIGN, budget)
    packed = [p for r in recipients if (p := packer.add(r)) is not None]
    last = packer.finish()
    return [*packed, last] if last is not None else packed


@settings(max_examples=150, deadline=None)
@given(
    recipients=recipients_st,
    count=st.integers(1, 12),
    nbytes=st.integers(MIN_CHUNK_BYTES, 20_000),
)
def test_every_recipient_is_in_exactly_one_chunk_within_both_budgets(
    recipients: list[Recipient], count: int, nbytes: int
) -> None:
    budget = Budget(count, nbytes)
    chunks = pack(recipients, budget)
    assert [r for c in chunks for r in decode_body(c.body)] == recipients
    assert [(c.start, c.stop) for c in chunks] == [
        (sum(x.size for x in chunks[:i]), sum(x.size for x in chunks[: i + 1]))
        for i in range(len(chunks))
    ]
    for c in chunks:
        assert 1 <= c.size <= count
        event = CAMPAIGN.event(decode_body(c.body), Chunk(index=c.index, count=len(chunks)))
        value = decode_request_event_bytes(event)
        # The planned size is exact, and within the byte budget.
        assert len(value) == CAMPAIGN.event_bytes(event.chunk, c.size, c.recipient_bytes)
        assert len(value) <= nbytes
    # Greedy: a chunk closed early only because its next recipient would break a budget.
    for c, following in itertools.pairwise(chunks):
        nxt = decode_body(following.body)[0]
        grown = CAMPAIGN.event([*decode_body(c.body), nxt], Chunk(index=99_999, count=100_000))
        assert c.size == count or len(decode_request_event_bytes(grown)) > nbytes
    # Deterministic: the same input cuts the same chunks.
    assert [c.body for c in pack(recipients, budget)] == [c.body for c in chunks]


def decode_request_event_bytes(event: BroadcastRequested) -> bytes:
    value = encode_request_event(event)
    decode_request_event(value)
    return value


@pytest.mark.parametrize(
    ("count", "nbytes", "message"),
    [
        (0, 512 * 1024, "--chunk-size"),
        (10_001, 512 * 1024, "--chunk-size"),
        (10, 100, "--chunk-bytes"),
        (10, 800 * 1024, "--chunk-bytes"),
    ],
)
def test_budgets_out_of_range_are_refused(count: int, nbytes: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Budget(count, nbytes)


def test_a_recipient_too_big_for_the_byte_budget_is_named() -> None:
    packer = Packer(CAMPAIGN, Budget(10, MIN_CHUNK_BYTES))
    packer.add(Recipient(phone="+628123000001", variables={"name": "x" * 1000}))
    huge = Recipient(phone="+628123000002", variables={f"v{i}": "z" * 1000 for i in range(5)})
    with pytest.raises(UsageError, match="line 7: the recipient alone makes a"):
        packer.add(huge, "line 7")


@settings(max_examples=100, deadline=None)
@given(recipients=recipients_st, cuts=st.lists(st.integers(1, 10), max_size=20))
def test_the_tally_over_chunks_is_expand_over_the_whole_audience(
    recipients: list[Recipient], cuts: list[int]
) -> None:
    tally = Tally(TEMPLATE, NOW)
    start = 0
    for size in [*cuts, len(recipients)]:
        part = recipients[start : start + size]
        start += len(part)
        if part:
            tally.add(part, normalize_recipients(part), {"+628123000002"})
    whole = BroadcastRequested(
        campaign_id=uuid.uuid4(),
        sender=CAMPAIGN.sender,
        template=TEMPLATE,
        recipients=recipients,
    )
    assert tally.counts == expand(whole, suppressed={"+628123000002"}, now=NOW).counts


@given(st.lists(st.text(max_size=12), max_size=3_000))
def test_the_digest_set_is_a_set(keys: list[str]) -> None:
    digests, plain = DigestSet(), set()
    for key in keys:
        assert (key in digests) == (key in plain)
        digests.add(key)
        plain.add(key)
    assert len(digests) == len(plain)
    assert digests.nbytes <= max(8 * 1024, 32 * len(plain))


def test_the_spool_gives_back_what_it_was_given() -> None:
    bodies = [b"[]", b'[{"phone":"+1"}]', b"x" * 100_000]
    with Spool() as spool:
        for body in bodies:
            spool.append(body)
        assert list(spool) == bodies
        assert list(spool) == bodies  # again, from the start
        assert (len(spool), spool.nbytes) == (3, sum(map(len, bodies)))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"label": "read", "done": 82_000, "unit": "lines", "elapsed": 2.0, "fraction": 0.25},
            "read  [█████░░░░░░░░░░░░░░░]  25%  82,000 lines  41,000/s  ETA 6s",
        ),
        (
            {"label": "read", "done": 1_500, "unit": "rows", "elapsed": 0.5, "detail": "1 chunks"},
            "read  1,500 rows  1 chunks  3,000/s",
        ),
        (
            {"label": "publish", "done": 40, "unit": "chunks", "elapsed": 4.0, "total": 40},
            "publish  [████████████████████] 100%  40/40 chunks  10/s  done in 4s",
        ),
        (
            {"label": "publish", "done": 0, "unit": "chunks", "elapsed": 0.0, "total": 40},
            "publish  [░░░░░░░░░░░░░░░░░░░░]   0%  0/40 chunks  -/s",
        ),
    ],
)
def test_progress_text(kwargs: dict[str, object], expected: str) -> None:
    assert progress_text(**kwargs) == expected  # type: ignore[arg-type]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_meter_redraws_on_a_terminal_and_is_quiet_in_a_log() -> None:
    clock = _Clock()
    log, terminal = io.StringIO(), _Terminal()
    quiet = Meter(log, "read", "rows", clock=clock)
    drawn = Meter(terminal, "read", "rows", clock=clock)
    for done in range(1, 301):
        clock.now = done * 0.25  # 75 s in all
        quiet.update(done)
        drawn.update(done)
    quiet.finish(300)
    drawn.finish(300)
    lines = log.getvalue().splitlines()
    # Every 10 s, and the end.
    assert [line.split("  ")[1] for line in lines] == [
        f"{n} rows" for n in [*range(40, 320, 40), 300]
    ]
    assert all(line.startswith("broadcast: read") for line in lines)
    assert terminal.getvalue().count("\r") == 301
    assert terminal.getvalue().endswith("\rread  300 rows  4/s\x1b[K\n")
    # A quick run in a log prints nothing at all.
    short = io.StringIO()
    Meter(short, "read", "rows", clock=clock).finish(5)
    assert short.getvalue() == ""
