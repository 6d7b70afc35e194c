"""Where `publish` reads its audience from, one row at a time: a file, stdin or a query.

- `FileSource`: a CSV or JSONL file (cli/recipients.py), or `-` for stdin, read
  line by line: memory is one row whatever the file size. Progress is the bytes
  read out of the file's size (unknown for stdin).
- `QuerySource`: a PostgreSQL query (`--from-query`), read through a server-side
  cursor (`prefetch` rows at a time) in one read-only, repeatable-read
  transaction, so the rows are one snapshot and the query cannot write. Columns
  are mapped as a CSV's are: `phone`, `opted_in_at` (timestamptz, or text in
  RFC 3339), optionally `opt_in_source` (text), and every other column is a
  template variable of that name (NULL or '' is an absent value; numbers,
  booleans, dates and uuids become their text; other types must be cast in the
  query). Rows are numbered from 1 in
  result order: give the query an `ORDER BY` on a unique key, or a re-run may
  cut different chunks (see docs/cli.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import os
import re
import sys
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, Literal, TypeAlias

import asyncpg

from cli.database import connect, describe
from cli.errors import UsageError
from cli.recipients import (
    OPT_IN_SOURCE,
    OPTED_IN_AT,
    PHONE,
    RESERVED_COLUMNS,
    BadRow,
    CsvRows,
    Format,
    JsonlRows,
    Parsed,
    Row,
    check_columns,
    decode_lines,
    recipient_from,
)
from cli.settings import CliSettings, redact_url

STDIN: Final = "-"
DEFAULT_PREFETCH: Final = 1_000
_ORDER_BY: Final = re.compile(r"\border\s+by\b", re.IGNORECASE)
# PostgreSQL types whose Python value has an obvious text form.
_TEXT_TYPES: Final = (str, int, float, decimal.Decimal, uuid.UUID, dt.date, dt.time)


@dataclass(frozen=True, slots=True)
class FileSource:
    path: str  # a file name, or "-" for stdin
    format: Format

    @property
    def label(self) -> str:
        return self.path

    @property
    def unit(self) -> Literal["line"]:
        return "line"


@dataclass(frozen=True, slots=True)
class QuerySource:
    sql: str
    database_url: str
    prefetch: int = DEFAULT_PREFETCH

    @property
    def label(self) -> str:
        return f"query on {redact_url(self.database_url)}"

    @property
    def format(self) -> Literal["query"]:
        return "query"

    @property
    def unit(self) -> Literal["row"]:
        return "row"

    @property
    def ordered(self) -> bool:
        """Whether the query text orders its rows (a heuristic, for a warning)."""
        return _ORDER_BY.search(self.sql) is not None


Source: TypeAlias = FileSource | QuerySource


@dataclass(slots=True)
class Reading:
    """Rows as they are read, and how far through the source that is.

    `default_opt_in_source` (`publish --opt-in-source`) goes on every row that names
    no `opt_in_source` of its own.
    """

    source: Source
    default_opt_in_source: str | None = None
    variables: set[str] = field(default_factory=set)
    bytes_read: int = 0
    bytes_total: int | None = None

    @property
    def fraction(self) -> float | None:
        if not self.bytes_total:
            return None
        return min(self.bytes_read / self.bytes_total, 1.0)


async def read_rows(settings: CliSettings, reading: Reading) -> AsyncGenerator[Row, None]:
    """Every row of the source in order; `UsageError` when it cannot be read at all."""
    source = reading.source
    if isinstance(source, FileSource):
        for row in _file_rows(source, reading):
            yield row
    else:
        async for row in _query_rows(settings, source, reading):
            yield row


def _file_rows(source: FileSource, reading: Reading) -> Iterator[Row]:
    with ExitStack() as stack:
        binary: IO[bytes]
        if source.path == STDIN:
            binary = sys.stdin.buffer
        else:
            try:
                binary = stack.enter_context(Path(source.path).open("rb"))
                reading.bytes_total = os.fstat(binary.fileno()).st_size
            except OSError as error:
                raise UsageError(f"cannot read {source.path}: {error.strerror or error}") from None
        lines = decode_lines(_counted(binary, reading), source.path)
        default = reading.default_opt_in_source
        rows = (
            CsvRows(lines, source.path, default)
            if source.format == "csv"
            else JsonlRows(lines, default)
        )
        # The same set object: the parser fills it as it learns the columns/keys.
        rows.variables = reading.variables
        yield from rows


def _counted(binary: IO[bytes], reading: Reading) -> Iterator[bytes]:
    for line in binary:
        reading.bytes_read += len(line)
        yield line


async def _query_rows(
    settings: CliSettings, source: QuerySource, reading: Reading
) -> AsyncIterator[Row]:
    target = dataclasses.replace(settings, database_url=source.database_url)
    async with (
        connect(target) as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        try:
            statement = await connection.prepare(source.sql)
        except asyncpg.PostgresError as error:
            raise UsageError(f"--from-query: PostgreSQL refused it: {describe(error)}") from None
        columns = [attribute.name for attribute in statement.get_attributes()]
        check_columns(columns, "--from-query: ", "query")
        reading.variables.update(c for c in columns if c not in RESERVED_COLUMNS)
        number = 0
        async for record in statement.cursor(prefetch=source.prefetch):
            number += 1
            yield _query_row(number, dict(record.items()), reading.default_opt_in_source)


def _query_row(
    number: int, values: dict[str, object], default_opt_in_source: str | None = None
) -> Row:
    phone, opted_in_at = values.pop(PHONE), values.pop(OPTED_IN_AT)
    source = values.pop(OPT_IN_SOURCE, None)
    source_text = _as_text(source)
    if source_text is None and source is not None:
        return BadRow(number, f"{OPT_IN_SOURCE}: a {type(source).__name__} is not text; cast it")
    variables: dict[str, object] = {}
    for name, value in values.items():
        text = _as_text(value)
        if text is None and value is not None:
            return BadRow(number, f"{name}: a {type(value).__name__} is not text; cast it")
        variables[name] = text
    if isinstance(opted_in_at, dt.datetime) and opted_in_at.tzinfo is None:
        return BadRow(number, f"{OPTED_IN_AT}: timestamp without a time zone; use timestamptz")
    result = recipient_from(
        phone if phone is None else _as_text(phone),
        opted_in_at,
        variables,
        source_text,
        default_opt_in_source=default_opt_in_source,
    )
    return BadRow(number, result) if isinstance(result, str) else Parsed(number, result)


def _as_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, _TEXT_TYPES):
        return str(value)
    return None
