"""Recipient files for `publish`: CSV or JSONL, parsed into `schemas.Recipient`s.

Formats (docs/cli.md):

- CSV (UTF-8, an optional BOM, comma-separated, RFC 4180 quoting): a header row
  with a `phone` and an `opted_in_at` column, optionally an `opt_in_source`
  column; every other column is a template variable of that name. An empty cell
  is an absent value (an empty `opted_in_at` means "not opted in", an empty
  `opt_in_source` means "not said", an empty variable is a missing variable).
- JSONL: one object per line, `{"phone": ..., "opted_in_at": ..., "opt_in_source":
  ..., "variables": {...}}`; other keys are ignored, blank lines are skipped.

`opted_in_at` is RFC 3339 with a timezone (`2026-01-05T10:00:00Z`).
`opt_in_source` (1-200 characters) says where that consent was given; intake keeps
it on the recipient's ledger row. A reader given a default (`publish
--opt-in-source`) puts it on every row that names none.

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

`CsvRows` and `JsonlRows` read one line at a time (memory: one row), from
`decode_lines` over a binary file or from any text; `parse_csv`/`parse_jsonl`
collect them into an `Audience` when a whole file in memory is fine. The column
mapping (`recipient_from`) is shared with the query source (cli/audience.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, TypeAlias

import msgspec

from cli.errors import UsageError
from schemas.codec import split_path
from schemas.requests import Recipient

Format = Literal["csv", "jsonl"]
FORMATS: Final[tuple[Format, ...]] = ("csv", "jsonl")
PHONE: Final = "phone"
OPTED_IN_AT: Final = "opted_in_at"
OPT_IN_SOURCE: Final = "opt_in_source"
# Columns that are fields of the recipient, not template variables.
RESERVED_COLUMNS: Final = (PHONE, OPTED_IN_AT, OPT_IN_SOURCE)
MAX_VARIABLES: Final = 50
MAX_VARIABLE_NAME: Final = 64

_jsonl_decoder: Final = msgspec.json.Decoder(Recipient)


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class Parsed:
    """A row that became a recipient, with its line."""

    line: int
    recipient: Recipient


Row: TypeAlias = Parsed | BadRow


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


def decode_lines(lines: Iterable[bytes], name: str) -> Iterator[str]:
    """Each `\n`-terminated line as text (the BOM dropped); `UsageError` on a bad byte."""
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{name} line {number}: not UTF-8 text") from None
        yield text


def read_audience(path: Path, fmt: Format) -> Audience:
    """Read and parse a whole recipients file; `UsageError` when it cannot be read at all."""
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


def recipient_from(
    phone: object,
    opted_in_at: object,
    variables: Mapping[str, object],
    opt_in_source: object = None,
    *,
    default_opt_in_source: str | None = None,
) -> Recipient | str:
    """A recipient from column values, or why the row is malformed.

    Empty text and None are absent values: no opt-in, no source (then
    `default_opt_in_source`), no variable.
    """
    problem = _check_phone(phone)
    if problem:
        return problem
    if isinstance(opted_in_at, str):
        opted_in_at = opted_in_at.strip() or None
    if isinstance(opt_in_source, str):
        opt_in_source = opt_in_source.strip() or None
    document = {
        PHONE: phone.strip() if isinstance(phone, str) else phone,
        OPTED_IN_AT: opted_in_at,
        OPT_IN_SOURCE: default_opt_in_source if opt_in_source is None else opt_in_source,
        "variables": {
            key: value for key, value in variables.items() if value is not None and value != ""
        },
    }
    try:
        return msgspec.convert(document, Recipient)
    except msgspec.ValidationError as error:
        return _reason(error)


class JsonlRows:
    """JSONL lines -> rows; blank lines skipped; `variables`: every key seen so far.

    The object is decoded as the schema's `Recipient`, so `opt_in_source` is null or
    absent (then `default_opt_in_source`) or 1-200 characters: `""` is malformed.
    """

    def __init__(self, lines: Iterable[str], default_opt_in_source: str | None = None) -> None:
        self._lines = lines
        self._default_opt_in_source = default_opt_in_source
        self.variables: set[str] = set()

    def __iter__(self) -> Iterator[Row]:
        for number, raw_line in enumerate(self._lines, start=1):
            line = raw_line.removesuffix("\n").removesuffix("\r")
            if number == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                recipient = _jsonl_decoder.decode(line)
            except msgspec.ValidationError as error:
                yield BadRow(number, _reason(error))
                continue
            except msgspec.DecodeError as error:
                yield BadRow(number, f"not a JSON object ({error})")
                continue
            problem = _check_phone(recipient.phone)
            if problem:
                yield BadRow(number, problem)
                continue
            if recipient.opt_in_source is None and self._default_opt_in_source is not None:
                recipient = msgspec.structs.replace(
                    recipient, opt_in_source=self._default_opt_in_source
                )
            self.variables.update(recipient.variables)
            yield Parsed(number, recipient)


def _header(row: list[str], name: str) -> list[str]:
    columns = [column.strip() for column in row]
    check_columns(columns, f"{name} line 1: ", "header")
    return columns


def check_columns(columns: list[str], where: str, what: str) -> None:
    """`phone` and `opted_in_at` present, the rest (but `opt_in_source`) usable as
    variable names."""
    if PHONE not in columns or OPTED_IN_AT not in columns:
        raise UsageError(
            f"{where}the {what} needs `{PHONE}` and `{OPTED_IN_AT}` columns, "
            f"got {', '.join(columns) or 'nothing'}"
        )
    seen: set[str] = set()
    for column in columns:
        if not column:
            raise UsageError(f"{where}a column has no name")
        if column in seen:
            raise UsageError(f"{where}column `{column}` appears twice")
        if len(column) > MAX_VARIABLE_NAME:
            raise UsageError(
                f"{where}column name `{column[:20]}...` is over {MAX_VARIABLE_NAME} characters"
            )
        seen.add(column)
    if sum(column not in RESERVED_COLUMNS for column in columns) > MAX_VARIABLES:
        raise UsageError(f"{where}more than {MAX_VARIABLES} variable columns")


class CsvRows:
    """CSV lines -> rows; `variables`: the header's variable columns once it is read."""

    def __init__(
        self,
        lines: Iterable[str],
        name: str = "recipients",
        default_opt_in_source: str | None = None,
    ) -> None:
        self._lines = lines
        self._name = name
        self._default_opt_in_source = default_opt_in_source
        self.variables: set[str] = set()

    def __iter__(self) -> Iterator[Row]:
        name = self._name
        reader = csv.reader(self._lines, strict=True)
        columns: list[str] | None = None
        previous_end = 0
        while True:
            start = previous_end + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                yield BadRow(start, f"not valid CSV ({error})")
                break
            previous_end = reader.line_num
            if start == 1 and row:
                row[0] = row[0].removeprefix("\ufeff")
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if columns is None:
                if start != 1:
                    raise UsageError(f"{name}: the header must be on line 1")
                columns = _header(row, name)
                self.variables.update(c for c in columns if c not in RESERVED_COLUMNS)
                continue
            if len(row) != len(columns):
                yield BadRow(start, f"{len(row)} fields where the header has {len(columns)}")
                continue
            values = dict(zip(columns, row, strict=True))
            phone, opted_in_at = values.pop(PHONE), values.pop(OPTED_IN_AT)
            source = values.pop(OPT_IN_SOURCE, None)
            result = recipient_from(
                phone,
                opted_in_at,
                values,
                source,
                default_opt_in_source=self._default_opt_in_source,
            )
            yield BadRow(start, result) if isinstance(result, str) else Parsed(start, result)
        if columns is None:
            raise UsageError(f"{name}: empty file (expected a header row)")


def _collect(rows: Iterable[Row], variables: set[str]) -> Audience:
    audience = Audience()
    for row in rows:
        if isinstance(row, BadRow):
            audience.bad_rows.append(row)
        else:
            audience.recipients.append(row.recipient)
            audience.lines.append(row.line)
    audience.variables = variables
    return audience


def parse_jsonl(text: str, default_opt_in_source: str | None = None) -> Audience:
    # Split on "\n" only, so line numbers match what an editor shows.
    rows = JsonlRows(text.split("\n"), default_opt_in_source)
    return _collect(rows, rows.variables)


def parse_csv(
    text: str, name: str = "recipients", default_opt_in_source: str | None = None
) -> Audience:
    rows = CsvRows(io.StringIO(text, newline=""), name, default_opt_in_source)
    return _collect(rows, rows.variables)
