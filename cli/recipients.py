"""Recipient files for `publish`: CSV or JSONL, parsed into `schemas.Recipient`s.

Formats (docs/cli.md):

- CSV (UTF-8, an optional BOM, comma-separated, RFC 4180 quoting): a header row
  with a `phone` and an `opted_in_at` column; every other column is a template
  variable of that name. An empty cell is an absent value (an empty
  `opted_in_at` means "not opted in", an empty variable is a missing variable).
- JSONL: one object per line, `{"phone": ..., "opted_in_at": ..., "variables":
  {...}}`; other keys are ignored, blank lines are skipped.

`opted_in_at` is RFC 3339 with a timezone (`2026-01-05T10:00:00Z`).

Two kinds of bad rows:

- *malformed*: the row cannot become a valid request event (unparseable JSON,
  the wrong number of CSV fields, an empty or over-long phone, a date that is
  not RFC 3339 with a timezone, a variable that is not text or too long). They
  are returned as `BadRow(line, reason)` and `publish` refuses the whole file
  (exit 2): one bad row would otherwise dead-letter a whole chunk.
- *ineligible*: a phone that is not valid E.164, no opt-in, a duplicate, a
  suppressed phone, a missing variable. Those rows are kept: intake records
  each one in the ledger as skipped with its reason, and the preview counts them.

Line numbers are 1-based physical lines of the file (the CSV header is line 1).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import msgspec

from cli.errors import UsageError
from schemas.codec import split_path
from schemas.requests import Recipient

Format = Literal["csv", "jsonl"]
FORMATS: Final[tuple[Format, ...]] = ("csv", "jsonl")
PHONE: Final = "phone"
OPTED_IN_AT: Final = "opted_in_at"
MAX_VARIABLES: Final = 50
MAX_VARIABLE_NAME: Final = 64

_jsonl_decoder: Final = msgspec.json.Decoder(Recipient)


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


@dataclass(slots=True)
class Audience:
    """The recipients read from a file, each with its line, and the malformed rows."""

    recipients: list[Recipient] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    # Template variables the file can provide (CSV: its columns; JSONL: keys seen).
    variables: set[str] = field(default_factory=set)

    @property
    def rows(self) -> int:
        return len(self.recipients) + len(self.bad_rows)


def detect_format(path: Path, explicit: str | None) -> Format:
    """`--format` when given, else by file suffix (`.csv`; `.jsonl`, `.ndjson`, `.json`)."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise UsageError(f"unknown recipients format {explicit!r} (csv or jsonl)")
        return "csv" if explicit == "csv" else "jsonl"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    raise UsageError(f"{path}: cannot tell the format from the suffix; pass --format csv|jsonl")


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text (a leading BOM dropped); `UsageError` naming the line of a bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UsageError(f"{name} line {line}: not UTF-8 text") from None


def read_audience(path: Path, fmt: Format) -> Audience:
    """Read and parse a recipients file; `UsageError` when it cannot be read at all."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    text = decode_text(data, str(path))
    return parse_csv(text, str(path)) if fmt == "csv" else parse_jsonl(text)


def _reason(error: msgspec.ValidationError) -> str:
    message, _suffix, path = split_path(str(error))
    where = path.removeprefix("$").removeprefix(".")
    return f"{where}: {message}" if where else message


def _check_phone(raw: object) -> str | None:
    if isinstance(raw, str) and not raw.strip():
        return "phone is empty"
    return None


def parse_jsonl(text: str) -> Audience:
    audience = Audience()
    # Split on "\n" only, so line numbers match what an editor shows.
    for number, raw_line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        line = raw_line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            recipient = _jsonl_decoder.decode(line)
        except msgspec.ValidationError as error:
            audience.bad_rows.append(BadRow(number, _reason(error)))
            continue
        except msgspec.DecodeError as error:
            audience.bad_rows.append(BadRow(number, f"not a JSON object ({error})"))
            continue
        problem = _check_phone(recipient.phone)
        if problem:
            audience.bad_rows.append(BadRow(number, problem))
            continue
        audience.recipients.append(recipient)
        audience.lines.append(number)
        audience.variables.update(recipient.variables)
    return audience


def _header(row: list[str], name: str) -> list[str]:
    columns = [column.strip() for column in row]
    if PHONE not in columns or OPTED_IN_AT not in columns:
        raise UsageError(
            f"{name} line 1: the header needs `{PHONE}` and `{OPTED_IN_AT}` columns, "
            f"got {', '.join(columns) or 'nothing'}"
        )
    seen: set[str] = set()
    for column in columns:
        if not column:
            raise UsageError(f"{name} line 1: a column has no name")
        if column in seen:
            raise UsageError(f"{name} line 1: column `{column}` appears twice")
        if len(column) > MAX_VARIABLE_NAME:
            raise UsageError(
                f"{name} line 1: column name `{column[:20]}...` is over "
                f"{MAX_VARIABLE_NAME} characters"
            )
        seen.add(column)
    if len(columns) - 2 > MAX_VARIABLES:
        raise UsageError(f"{name} line 1: more than {MAX_VARIABLES} variable columns")
    return columns


def parse_csv(text: str, name: str = "recipients") -> Audience:
    audience = Audience()
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    columns: list[str] | None = None
    previous_end = 0
    while True:
        start = previous_end + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            audience.bad_rows.append(BadRow(start, f"not valid CSV ({error})"))
            break
        previous_end = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if columns is None:
            if start != 1:
                raise UsageError(f"{name}: the header must be on line 1")
            columns = _header(row, name)
            audience.variables.update(c for c in columns if c not in (PHONE, OPTED_IN_AT))
            continue
        if len(row) != len(columns):
            audience.bad_rows.append(
                BadRow(start, f"{len(row)} fields where the header has {len(columns)}")
            )
            continue
        values = dict(zip(columns, row, strict=True))
        phone = values.pop(PHONE)
        opted_in_at = values.pop(OPTED_IN_AT).strip()
        problem = _check_phone(phone)
        if problem:
            audience.bad_rows.append(BadRow(start, problem))
            continue
        document = {
            PHONE: phone.strip(),
            OPTED_IN_AT: opted_in_at or None,
            "variables": {key: value for key, value in values.items() if value != ""},
        }
        try:
            recipient = msgspec.convert(document, Recipient)
        except msgspec.ValidationError as error:
            audience.bad_rows.append(BadRow(start, _reason(error)))
            continue
        audience.recipients.append(recipient)
        audience.lines.append(start)
    if columns is None:
        raise UsageError(f"{name}: empty file (expected a header row)")
    return audience
