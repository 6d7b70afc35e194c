"""Recipient files: what parses, and every malformed row reported with its line number."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.errors import UsageError
from cli.recipients import BadRow, decode_text, detect_format, parse_csv, parse_jsonl

OPTED = datetime(2026, 1, 5, 10, tzinfo=UTC)


def test_csv_rows_become_recipients_with_their_variables() -> None:
    audience = parse_csv(
        "\ufeffphone,opted_in_at,first_name,city\n"
        "+628111222333,2026-01-05T10:00:00Z,Budi,Jakarta\n"
        " +628111222334 ,,Sari,\n"
    )
    assert audience.bad_rows == []
    assert audience.lines == [2, 3]
    first, second = audience.recipients
    assert first.phone == "+628111222333"
    assert first.opted_in_at == OPTED
    assert first.variables == {"first_name": "Budi", "city": "Jakarta"}
    # An empty cell is an absent value: no opt-in, no variable.
    assert second.phone == "+628111222334"
    assert second.opted_in_at is None
    assert second.variables == {"first_name": "Sari"}
    assert audience.variables == {"first_name", "city"}


def test_ineligible_rows_are_kept_for_the_ledger() -> None:
    audience = parse_csv("phone,opted_in_at\n0812345,2026-01-05T10:00:00Z\n+628111222333,\n")
    assert [r.phone for r in audience.recipients] == ["0812345", "+628111222333"]
    assert audience.bad_rows == []


def test_malformed_csv_rows_are_reported_with_their_physical_line() -> None:
    text = (
        "phone,opted_in_at,first_name\n"  # line 1
        "+628111222333,2026-01-05T10:00:00Z,Budi\n"  # 2
        ',2026-01-05T10:00:00Z,"two\nlines"\n'  # 3-4: empty phone
        "+628111222334,yesterday,Sari\n"  # 5
        "\n"  # 6: blank, skipped
        "+628111222335,2026-01-05T10:00:00,Naive\n"  # 7
        "+628111222336,2026-01-05T10:00:00Z\n"  # 8: a field short
        f"{'+62' + '1' * 40},2026-01-05T10:00:00Z,Long\n"  # 9
        "+628111222337,2026-01-05T10:00:00Z,Ok\n"  # 10
    )
    audience = parse_csv(text)
    assert [row.line for row in audience.bad_rows] == [3, 5, 7, 8, 9]
    reasons = {row.line: row.reason for row in audience.bad_rows}
    assert reasons[3] == "phone is empty"
    assert reasons[5].startswith("opted_in_at: ")
    assert "timezone" in reasons[7]
    assert reasons[8] == "2 fields where the header has 3"
    assert reasons[9].startswith("phone: ")
    assert audience.lines == [2, 10]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("phone,first_name\n+628111222333,Budi\n", "needs `phone` and `opted_in_at`"),
        ("phone,opted_in_at,,x\n", "a column has no name"),
        ("phone,opted_in_at,x,x\n", "column `x` appears twice"),
        ("phone,opted_in_at," + ",".join(f"v{i}" for i in range(51)) + "\n", "more than 50"),
    ],
)
def test_a_bad_header_is_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_csv(text, "r.csv")


def test_jsonl_rows_and_their_line_numbers() -> None:
    text = (
        '{"phone": "+628111222333", "opted_in_at": "2026-01-05T10:00:00Z",'
        ' "variables": {"first_name": "Budi"}, "extra": 1}\n'  # 1: unknown keys ignored
        "\n"  # 2: blank
        '{"phone": "+628111222334"}\r\n'  # 3: no opt-in: ineligible, kept
        "not json\n"  # 4
        '{"phone": 628111222335}\n'  # 5
        '{"phone": "+628111222336", "variables": {"n": 5}}\n'  # 6
        '{"phone": " "}\n'  # 7
        "[1, 2]\n"  # 8
    )
    audience = parse_jsonl(text)
    assert audience.lines == [1, 3]
    assert audience.recipients[0].variables == {"first_name": "Budi"}
    assert audience.recipients[1].opted_in_at is None
    assert [row.line for row in audience.bad_rows] == [4, 5, 6, 7, 8]
    assert audience.bad_rows[1] == BadRow(5, "phone: Expected `str`, got `int`")
    assert audience.bad_rows[2].reason.startswith("variables")
    assert audience.bad_rows[3] == BadRow(7, "phone is empty")


def test_bytes_that_are_not_utf8_name_their_line() -> None:
    with pytest.raises(UsageError, match=r"r\.csv line 3: not UTF-8"):
        decode_text(b"phone,opted_in_at\n+628111222333,\n\xff\xfe,\n", "r.csv")


@pytest.mark.parametrize(
    ("name", "explicit", "expected"),
    [
        ("a.csv", None, "csv"),
        ("a.JSONL", None, "jsonl"),
        ("a.ndjson", None, "jsonl"),
        ("a.txt", "csv", "csv"),
    ],
)
def test_format_from_suffix_or_flag(name: str, explicit: str | None, expected: str) -> None:
    assert detect_format(Path(name), explicit) == expected


def test_an_unknown_suffix_needs_the_flag() -> None:
    with pytest.raises(UsageError, match="--format"):
        detect_format(Path("a.txt"), None)


# --- opt_in_source: where the consent came from ---------------------------------------


def test_csv_opt_in_source_column_present_empty_or_blank() -> None:
    audience = parse_csv(
        "phone,opted_in_at,opt_in_source,first_name\n"
        "+628111222333,2026-01-05T10:00:00Z,checkout_form,Budi\n"
        "+628111222334,2026-01-05T10:00:00Z,,Sari\n"
        "+628111222335,2026-01-05T10:00:00Z,  ,Tono\n"
        "+628111222336,2026-01-05T10:00:00Z, crm:import-2026-11 ,Ani\n"
    )
    assert audience.bad_rows == []
    sources = [r.opt_in_source for r in audience.recipients]
    # Empty (or blank) is an absent value, as every CSV cell; text is trimmed.
    assert sources == ["checkout_form", None, None, "crm:import-2026-11"]
    # A field of the recipient, never a template variable.
    assert audience.variables == {"first_name"}
    assert all("opt_in_source" not in r.variables for r in audience.recipients)


def test_csv_without_the_column_has_no_source() -> None:
    audience = parse_csv("phone,opted_in_at\n+628111222333,2026-01-05T10:00:00Z\n")
    assert audience.recipients[0].opt_in_source is None


@pytest.mark.parametrize(
    ("header", "row", "expected"),
    [
        ("phone,opted_in_at", "+628111222333,2026-01-05T10:00:00Z", "crm"),  # no column
        ("phone,opted_in_at,opt_in_source", "+628111222333,2026-01-05T10:00:00Z,", "crm"),
        ("phone,opted_in_at,opt_in_source", "+628111222333,2026-01-05T10:00:00Z,form", "form"),
        ("phone,opted_in_at,opt_in_source", "+628111222333,,", "crm"),  # no opt-in either
    ],
)
def test_csv_default_source_fills_only_rows_that_name_none(
    header: str, row: str, expected: str
) -> None:
    audience = parse_csv(f"{header}\n{row}\n", default_opt_in_source="crm")
    assert [r.opt_in_source for r in audience.recipients] == [expected]


def test_an_over_long_source_is_a_malformed_row() -> None:
    audience = parse_csv(
        "phone,opted_in_at,opt_in_source\n"
        f"+628111222333,2026-01-05T10:00:00Z,{'x' * 201}\n"
        f"+628111222334,2026-01-05T10:00:00Z,{'x' * 200}\n"
    )
    assert [row.line for row in audience.bad_rows] == [2]
    assert audience.bad_rows[0].reason.startswith("opt_in_source: ")
    assert audience.recipients[0].opt_in_source == "x" * 200


def test_the_source_column_does_not_count_as_a_variable() -> None:
    variables = ",".join(f"v{i}" for i in range(50))
    audience = parse_csv(f"phone,opted_in_at,opt_in_source,{variables}\n")
    assert len(audience.variables) == 50


def test_jsonl_opt_in_source_present_absent_null_or_empty() -> None:
    text = (
        '{"phone": "+628111222333", "opted_in_at": "2026-01-05T10:00:00Z",'
        ' "opt_in_source": "checkout_form"}\n'  # 1
        '{"phone": "+628111222334", "opted_in_at": "2026-01-05T10:00:00Z"}\n'  # 2: absent
        '{"phone": "+628111222335", "opt_in_source": null}\n'  # 3: null is absent
        '{"phone": "+628111222336", "opt_in_source": ""}\n'  # 4: the schema's 1-200 chars
        '{"phone": "+628111222337", "opt_in_source": 7}\n'  # 5: not text
    )
    audience = parse_jsonl(text)
    assert audience.lines == [1, 2, 3]
    assert [r.opt_in_source for r in audience.recipients] == ["checkout_form", None, None]
    assert [row.line for row in audience.bad_rows] == [4, 5]
    assert all(row.reason.startswith("opt_in_source: ") for row in audience.bad_rows)

    defaulted = parse_jsonl(text, default_opt_in_source="crm")
    assert [r.opt_in_source for r in defaulted.recipients] == ["checkout_form", "crm", "crm"]
