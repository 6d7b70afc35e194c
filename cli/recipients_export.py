"""`broadcast recipients <campaign>`: every recipient, with the consent it relied on.

One row per recipient (per ledger row), in phone order, with these columns:

- `phone` (masked unless `--show-phones`);
- `status`: where the message is in the read model (`campaign_recipient_status`, the
  view `broadcast status` and `broadcast failed` read): pending, queued, sent,
  delivered, read, failed or skipped; `reason`, `message_id`, `error_code` from the
  same view;
- `ledger_status`: the dispatcher's own row (pending, queued, failed, skipped);
- `opted_in_at`, `opt_in_source`: the opt-in the send relied on, as the request
  carried it (docs/intake.md, "Consent provenance");
- `queued_at`: when the API accepted the send.

A table on stdout, or CSV with `--csv FILE` (`-` for stdout), in the CSV style of
`broadcast failed --csv`. `--status S` keeps the recipients whose read-model status
is S. Phones are masked as the services' logs mask them (`+62******2333`). The
export streams: one read-only, repeatable-read transaction (one snapshot of the
campaign) and a server-side cursor that holds 2,000 rows at a time, so a million
recipients take the memory of one batch. An unknown campaign is exit 3.
"""

from __future__ import annotations

import argparse
import csv
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol, TextIO

import asyncpg

from cli.database import Q, connect, parse_campaign_id
from cli.errors import NotFound, UsageError
from cli.output import Console, StreamedTable, number
from cli.settings import CliSettings
from cli.status import STATUSES
from runtime.logs import mask_phone

CSV_COLUMNS: Final = (
    "phone",
    "status",
    "ledger_status",
    "reason",
    "message_id",
    "error_code",
    "opted_in_at",
    "opt_in_source",
    "queued_at",
)
BATCH: Final = 2_000


class Sink(Protocol):
    """Where the rows go: one call per recipient, then `finish`."""

    def row(self, values: dict[str, Any]) -> None: ...

    def finish(self) -> None: ...


class CsvSink:
    """`CSV_COLUMNS`, a header row first; datetimes in ISO 8601, NULL as an empty cell."""

    def __init__(self, stream: TextIO) -> None:
        self._writer = csv.writer(stream, lineterminator="\n")
        self._writer.writerow(CSV_COLUMNS)
        self._stream = stream

    def row(self, values: dict[str, Any]) -> None:
        self._writer.writerow(_csv_value(values[column]) for column in CSV_COLUMNS)

    def finish(self) -> None:
        self._stream.flush()


class TableSink:
    """A plain text table (cli/output.py), streamed."""

    def __init__(self, stream: TextIO) -> None:
        self._table = StreamedTable(stream, CSV_COLUMNS)

    def row(self, values: dict[str, Any]) -> None:
        self._table.add([values[column] for column in CSV_COLUMNS])

    def finish(self) -> None:
        self._table.finish()


class JsonSink:
    """`--json`: one object per recipient (keys `CSV_COLUMNS`), one line each."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def row(self, values: dict[str, Any]) -> None:
        self._console.emit(values)

    def finish(self) -> None:
        pass


def _csv_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


async def export_recipients(
    settings: CliSettings,
    campaign_id: uuid.UUID,
    open_sink: Callable[[], Sink],
    *,
    status: str | None = None,
    show_phones: bool = False,
) -> int:
    """Every recipient of the campaign (module docstring) into the sink `open_sink` makes
    once the campaign is known to exist; returns the row count. `NotFound` before any
    sink is made for an unknown campaign."""
    async with (
        connect(settings) as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        if await connection.fetchval(Q["campaign_state"], campaign_id) is None:
            raise NotFound(f"campaign {campaign_id} not found", campaign_id=str(campaign_id))
        sink = open_sink()
        written = 0
        cursor = connection.cursor(Q["recipient_rows"], campaign_id, status, prefetch=BATCH)
        async for record in cursor:
            sink.row(_values(record, show_phones))
            written += 1
        sink.finish()
    return written


def _values(record: asyncpg.Record, show_phones: bool) -> dict[str, Any]:
    values = dict(record.items())
    if not show_phones:
        values["phone"] = mask_phone(values["phone"])
    return values


# --- command line ---------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "recipients",
        parents=[common],
        help="every recipient of a campaign: status, message id, the opt-in it relied on",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("campaign", help="campaign id (UUID)")
    parser.add_argument(
        "--csv",
        metavar="FILE",
        help=f"export the rows as CSV ({', '.join(CSV_COLUMNS)}); - for stdout",
    )
    parser.add_argument(
        "--status",
        choices=STATUSES,
        help="only the recipients with this read-model status",
    )
    parser.add_argument(
        "--show-phones",
        action="store_true",
        help="print phone numbers in full (default: masked, +62******2333)",
    )
    parser.set_defaults(handler=_handle)


async def _handle(settings: CliSettings, console: Console, args: argparse.Namespace) -> int:
    campaign_id = parse_campaign_id(args.campaign)
    options: dict[str, Any] = {"status": args.status, "show_phones": args.show_phones}
    if args.csv == "-":
        if console.json:
            raise UsageError("--csv - and --json both write to stdout: pick one")
        await export_recipients(settings, campaign_id, lambda: CsvSink(console.out), **options)
        return 0
    exported = None
    with ExitStack() as files:
        if args.csv is not None:
            path = Path(args.csv)

            def open_file() -> Sink:
                try:
                    stream = files.enter_context(path.open("w", encoding="utf-8", newline=""))
                except OSError as error:
                    raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
                return CsvSink(stream)

            rows = await export_recipients(settings, campaign_id, open_file, **options)
            exported = {"file": args.csv, "rows": rows}
            console.line(f"wrote {number(rows)} row(s) to {path}")
        else:
            sink: Callable[[], Sink] = (
                (lambda: JsonSink(console)) if console.json else (lambda: TableSink(console.out))
            )
            rows = await export_recipients(settings, campaign_id, sink, **options)
            which = f" with status {args.status}" if args.status else ""
            console.line(f"{number(rows)} recipient(s){which} of campaign {campaign_id}")
    console.emit(
        {
            "campaign_id": str(campaign_id),
            "status": args.status,
            "rows": rows,
            "exported": exported,
        }
    )
    return 0
