"""Pass one of `publish`: read the audience once; validate, count, cut and spool its chunks.

Rows stream from the source (cli/audience.py) into the packer (cli/chunks.py);
each chunk it closes is counted with intake's rules (cli/tally.py, suppressions
looked up for that chunk's phones only) and, unless this is a dry run, written
to the spool (cli/spool.py) for pass two. Memory: the open chunk, the phones'
digests for the duplicate count, and at most `MAX_BAD_ROWS_KEPT` malformed rows.
After the first malformed row nothing more is cut or spooled (nothing will be
published), but reading goes on so the error can say how many there are.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import asyncpg

from cli.audience import Reading, read_rows
from cli.chunks import Budget, Campaign, Packed, Packer
from cli.database import Q, connect
from cli.errors import Unavailable
from cli.meter import Meter
from cli.output import number
from cli.recipients import BadRow
from cli.settings import CliSettings
from cli.spool import Spool
from cli.tally import Tally
from consumer.intake.expand import normalize_recipients
from schemas.requests import Chunk

MAX_BAD_ROWS_KEPT: Final = 1_000


@dataclass(frozen=True, slots=True)
class Cut:
    """One chunk as it will be published."""

    index: int
    recipients: int
    bytes: int


@dataclass(slots=True)
class Scan:
    """What pass one learnt about the audience."""

    rows: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    bad_total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    variables: set[str] = field(default_factory=set)
    cuts: list[Cut] = field(default_factory=list)
    suppressions_checked: bool = False
    with_opt_in_source: int = 0
    # Eligible recipients by their numbers' time zones (only with quiet hours).
    zones: dict[tuple[str, ...], int] = field(default_factory=dict)

    @property
    def recipients(self) -> int:
        return sum(cut.recipients for cut in self.cuts)


class Suppressions:
    """The suppression list, asked one chunk's phones at a time (or not at all, offline)."""

    def __init__(self, connection: asyncpg.Connection | None) -> None:
        self._connection = connection

    @property
    def checked(self) -> bool:
        return self._connection is not None

    async def of(self, phones: Sequence[str | None]) -> set[str]:
        if self._connection is None:
            return set()
        wanted = sorted({phone for phone in phones if phone is not None})
        rows = await self._connection.fetch(Q["suppressed_phones"], wanted)
        return {row["phone"] for row in rows}


@asynccontextmanager
async def suppressions(
    settings: CliSettings, campaign_id: uuid.UUID, warnings: list[str]
) -> AsyncIterator[Suppressions]:
    """The list on one connection; warns when PostgreSQL is unreachable or the id is taken."""
    async with AsyncExitStack() as stack:
        connection: asyncpg.Connection | None
        try:
            connection = await stack.enter_async_context(connect(settings))
        except Unavailable as error:
            warnings.append(f"suppressions not checked: {error.message}")
            connection = None
        else:
            existing = await connection.fetchrow(Q["campaign_overview"], campaign_id)
            if existing is not None:
                warnings.append(
                    f"campaign {campaign_id} already exists (state {existing['state']}, "
                    f"{existing['chunks_received']}/{existing['chunk_count']} chunks): the same "
                    "chunks again change nothing, different ones are dead-lettered"
                )
        yield Suppressions(connection)


async def scan(
    settings: CliSettings,
    reading: Reading,
    campaign: Campaign,
    budget: Budget,
    now: datetime,
    *,
    spool: Spool | None,
    meter: Meter,
    warnings: list[str],
) -> Scan:
    """Read the whole source once (see the module docstring)."""
    result = Scan(variables=reading.variables)
    packer = Packer(campaign, budget)
    tally = Tally(campaign.template, now, zones=Counter() if campaign.quiet_hours else None)
    sizes: list[tuple[int, int]] = []
    unit = reading.source.unit

    async def close(packed: Packed, lookup: Suppressions) -> None:
        phones = normalize_recipients(packed.recipients)
        tally.add(packed.recipients, phones, await lookup.of(phones))
        result.with_opt_in_source += sum(r.opt_in_source is not None for r in packed.recipients)
        if spool is not None:
            spool.append(packed.body)
        sizes.append((packed.size, packed.recipient_bytes))

    def progress(final: bool = False) -> None:
        show = meter.finish if final else meter.update
        show(result.rows, fraction=reading.fraction, detail=f"{number(packer.chunks)} chunks")

    async with suppressions(settings, campaign.campaign_id, warnings) as lookup:
        result.suppressions_checked = lookup.checked
        async with aclosing(read_rows(settings, reading)) as rows:
            async for row in rows:
                result.rows += 1
                progress()
                if isinstance(row, BadRow):
                    result.bad_total += 1
                    if len(result.bad_rows) < MAX_BAD_ROWS_KEPT:
                        result.bad_rows.append(row)
                    continue
                if result.bad_total:
                    continue
                closed = packer.add(row.recipient, f"{reading.source.label} {unit} {row.line}")
                if closed is not None:
                    await close(closed, lookup)
        last = None if result.bad_total else packer.finish()
        if last is not None:
            await close(last, lookup)
    progress(final=True)
    count = len(sizes)
    result.cuts = [
        Cut(index, size, campaign.event_bytes(Chunk(index=index, count=count), size, body))
        for index, (size, body) in enumerate(sizes)
    ]
    result.counts = {outcome: count for outcome, count in tally.counts.items()}
    result.zones = dict(tally.zones or {})
    return result
