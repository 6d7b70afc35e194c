"""`python -m projector rebuild`: the projection, replayed from the whole topic.

Procedure:

1. Take a session advisory lock (one rebuild at a time) and create the scratch
   table `projector_rebuild.message_statuses` (UNLOGGED, `LIKE message_statuses`);
   this connection's search_path puts it first, so the live projector's own
   upsert statement writes it.
2. Read every partition of the status topic from its beginning, with no
   consumer group (nothing is committed, the live group is untouched), up to
   the end offsets taken at the start; fold each poll and upsert it into the
   scratch table (same fold, same merge as the live projector).
3. In ONE transaction: lock `message_statuses` against writers (readers carry
   on with the old rows), catch up to the topic's new end offsets, delete
   every row of `message_statuses` and copy the scratch table in, less the
   message ids of pruned campaigns (`pruned_messages`, written by `broadcast
   prune`: the topic still holds their events); commit.
   Everything the live projector folded before the lock came from offsets
   below those new ends, so nothing is lost; what it folds after the commit is
   merged on top, which is what the fold is for. The views keep their table.
4. Drop the scratch table, release the lock.

The live projector may keep running throughout; it only waits during step 3.
Suppressions found in the replay are added to the live list (never removed).
Records set aside (`status_rejects`) are set aside again, by the same checks and
the same isolation as the live projector's, so both tables agree; the rejects
table is the live one, where a position already recorded is left as it is, and
those keyed by a pruned message id are deleted again at the swap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from projector.loop import make_consumer
from projector.records import read_batch
from projector.settings import ProjectorSettings
from projector.store import QUERIES, write_records
from runtime.logs import get_logger
from runtime.sqlfiles import load_queries

log = get_logger(__name__)

# Retention's part of the swap (cli/prune.py writes the tombstones).
PRUNED: Final = load_queries(Path(__file__).with_name("sql") / "pruned.sql")


class RebuildError(RuntimeError):
    """The rebuild could not start: another one is running."""


@dataclass(slots=True)
class RebuildReport:
    events: int = 0
    invalid: int = 0
    ignored: int = 0
    rejected: int = 0
    rows: int = 0
    seconds: float = 0.0


async def _replay(
    consumer: AIOKafkaConsumer,
    connection: asyncpg.Connection,
    partitions: list[TopicPartition],
    settings: ProjectorSettings,
    report: RebuildReport,
) -> None:
    """Fold every record below the current end offsets into the scratch table."""
    ends = await consumer.end_offsets(partitions)
    while True:
        behind = [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
        if not behind:
            return
        records = await consumer.getmany(
            *behind, timeout_ms=1_000, max_records=settings.rebuild_batch_size
        )
        batch = read_batch(record for partition in records.values() for record in partition)
        # Its own transaction in step 2, a savepoint inside the swap's in step 3.
        async with connection.transaction():
            written = await write_records(connection, batch.records, batch.rejects)
        refused = sum(len(reject.record.updates) for reject in written.refused)
        report.events += len(batch.updates) - refused
        report.invalid += len(batch.invalid) + batch.inadmissible
        report.ignored += batch.ignored
        report.rejected += len(batch.rejects) + len(written.refused)


async def rebuild(settings: ProjectorSettings) -> RebuildReport:
    """Replay the topic into a fresh table and swap it in (see the module docstring)."""
    started = time.monotonic()
    report = RebuildReport()
    connection: asyncpg.Connection = await asyncpg.connect(settings.database_url)
    try:
        if not await connection.fetchval(QUERIES["try_rebuild_lock"]):
            raise RebuildError("another rebuild is running")
        try:
            await connection.execute(QUERIES["create_rebuild_schema"])
            await connection.execute(QUERIES["drop_rebuild"])
            await connection.execute(QUERIES["create_rebuild"])
            await connection.execute(QUERIES["use_rebuild_table"])
            consumer = make_consumer(settings, group_id=None)
            # Without a group, a subscription is every partition of the topic, assigned
            # at start (which raises when the topic does not exist).
            consumer.subscribe([settings.topic])
            await consumer.start()
            try:
                partitions = sorted(consumer.assignment())
                await consumer.seek_to_beginning(*partitions)
                await _replay(consumer, connection, partitions, settings, report)
                log.info("rebuild_replayed", events=report.events)
                async with connection.transaction():
                    await connection.execute(QUERIES["lock_statuses"])
                    await _replay(consumer, connection, partitions, settings, report)
                    await connection.execute(PRUNED["drop_pruned_from_rebuild"])
                    await connection.execute(QUERIES["delete_statuses"])
                    await connection.execute(QUERIES["copy_rebuild_into_statuses"])
                    await connection.execute(PRUNED["drop_pruned_rejects"])
                    report.rows = await connection.fetchval(QUERIES["count_rebuild"])
            finally:
                await consumer.stop()
            await connection.execute(QUERIES["drop_rebuild"])
        finally:
            await connection.fetchval(QUERIES["release_rebuild_lock"])
    finally:
        await connection.close()
    report.seconds = time.monotonic() - started
    log.info(
        "rebuild_done",
        events=report.events,
        invalid=report.invalid,
        rejected=report.rejected,
        rows=report.rows,
        seconds=round(report.seconds, 2),
    )
    return report
