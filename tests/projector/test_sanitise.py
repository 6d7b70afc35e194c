"""What a misbehaving API may put in a signed webhook, table-driven: cleaned, clamped or
set aside by the pure code before PostgreSQL sees it; and which database errors count as
a refusal of the data (`runtime.refusal`), the last line behind it."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord

from projector.fold import MAX_UNIX_SECONDS, fold, unstorable
from projector.records import read_batch
from runtime.refusal import masked, refusal_of
from tests.projector.updates import update

T = 1_700_000_000


def body(timestamp: Any = str(T), **status: Any) -> bytes:
    entry = {"id": "wamid.S", "status": "failed", "timestamp": timestamp, **status}
    return json.dumps(
        {
            "entry": [{"changes": [{"value": {"statuses": [entry]}}]}],
            "kirim": {"message_id": "msg_S", "error": {"code": "x", "provider_code": 7}},
        }
    ).encode()


def record(
    value: bytes, offset: int = 0, headers: list[tuple[str, bytes]] | None = None
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"key",
        value=value,
        checksum=None,
        serialized_key_size=3,
        serialized_value_size=len(value),
        headers=headers or [],
    )


def test_the_forwarded_event_id_names_the_message_of_the_kirim_block() -> None:
    statuses = [{"id": w, "status": "read", "timestamp": str(T)} for w in ("wamid.A", "wamid.B")]
    value = json.dumps(
        {"entry": [{"changes": [{"value": {"statuses": statuses}}]}], "kirim": {"message_id": "m"}}
    ).encode()

    batch = read_batch([record(value, headers=[("X-Kirim-Event-Id", b"wamid.B")])])

    assert sorted(fold(batch.updates)) == ["m", "wamid:wamid.A"]
    assert fold(batch.updates)["m"].wamid == "wamid.B"


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (0, None),
        (T, None),
        (MAX_UNIX_SECONDS, None),
        (MAX_UNIX_SECONDS + 1, "timestamp_out_of_range"),
        (99_999_999_999_999, "timestamp_out_of_range"),
        (2**70, "timestamp_out_of_range"),
    ],
)
def test_unstorable_times(at: int, reason: str | None) -> None:
    assert unstorable(update("sent", at)) == reason


@pytest.mark.parametrize(
    ("value", "outcome", "check"),
    [
        # NUL (as a JSON escape) in the error message and the recipient id: cleaned.
        (body(recipient_id="62811\u0000", errors=[{"message": "bad\u0000"}]), "folded",
         {"recipient_id": "62811\ufffd", "error_message": "bad\ufffd"}),
        # A lone surrogate escape: not JSON msgspec accepts, so not a status body at all.
        (body(errors=[{"message": "x\ud800"}]), "invalid", {}),
        # A provider code beyond int4: dropped, the failure and its code are kept.
        (body().replace(b'"provider_code": 7', b'"provider_code": 99999999999'), "folded",
         {"provider_code": None, "error_code": "x"}),
        # Times past year 9999: the whole record is set aside with the reason.
        (body(timestamp=99_999_999_999_999), "timestamp_out_of_range", {}),
        (body(timestamp="999999999999"), "timestamp_out_of_range", {}),
        (body(timestamp=str(MAX_UNIX_SECONDS)), "folded", {"failed_at": MAX_UNIX_SECONDS}),
        # A negative time is not a status at all (the schema refuses it).
        (body(timestamp=-1), "invalid", {}),
    ],
)  # fmt: skip
def test_hostile_values(value: bytes, outcome: str, check: dict[str, Any]) -> None:
    batch = read_batch([record(value, offset=5)])
    if outcome == "invalid":
        assert len(batch.invalid) == 1
        return
    if outcome == "folded":
        assert not batch.rejects
        row = fold(batch.updates)["msg_S"]
        assert {name: getattr(row, name) for name in check} == check
        return
    assert not batch.records
    [reject] = batch.rejects
    assert (reject.reason, reject.sqlstate) == (outcome, None)
    assert (reject.record.offset, reject.record.key, reject.record.value) == (5, b"key", value)


def test_a_rejected_record_takes_its_good_statuses_with_it() -> None:
    good = {"id": "wamid.S", "status": "sent", "timestamp": str(T)}
    bad = {"id": "wamid.S", "status": "read", "timestamp": 10**14}
    value = json.dumps({"entry": [{"changes": [{"value": {"statuses": [good, bad]}}]}]}).encode()
    batch = read_batch([record(value)])
    assert batch.updates == []
    assert [len(r.record.updates) for r in batch.rejects] == [2]


def _error(cls: type[asyncpg.PostgresError], message: str) -> asyncpg.PostgresError:
    return cls(message)


@pytest.mark.parametrize(
    ("error", "sqlstate"),
    [
        (_error(asyncpg.exceptions.CheckViolationError, "violates check"), "23514"),
        (_error(asyncpg.exceptions.CharacterNotInRepertoireError, "0x00"), "22021"),
        (_error(asyncpg.exceptions.DatetimeFieldOverflowError, "out of range"), "22008"),
        (_error(asyncpg.exceptions.DataError, "invalid input for query argument $1"), "22000"),
        (_error(asyncpg.exceptions.ProgramLimitExceededError, "index row size"), "54000"),
        # Not about the data: let it crash, never set the records aside.
        (_error(asyncpg.exceptions.ReadOnlySQLTransactionError, "read-only"), None),
        (_error(asyncpg.exceptions.UndefinedTableError, "no such table"), None),
        (_error(asyncpg.exceptions.DiskFullError, "disk full"), None),
        (_error(asyncpg.exceptions.SerializationError, "retry"), None),
        (OSError("connection reset"), None),
    ],
)
def test_what_counts_as_a_refusal(error: BaseException, sqlstate: str | None) -> None:
    refusal = refusal_of(error)
    assert (refusal.sqlstate if refusal else None) == sqlstate
    if refusal is not None:
        assert refusal.detail.startswith(f"{sqlstate} {type(error).__name__}: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Failing row contains (+628111222333, x)", "Failing row contains (+62******2333, x)"),
        ("Key (phone)=(628111222333) exists", "Key (phone)=(628*****2333) exists"),
        ("offset 42, code 131026", "offset 42, code 131026"),
        ("nul \x00 and \ud800", "nul \ufffd and ?"),
    ],
)
def test_details_are_masked_and_storable(text: str, expected: str) -> None:
    assert masked(text) == expected
