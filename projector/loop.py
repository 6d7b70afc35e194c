"""The projector's consumer loop: poll, fold, store, then commit the offsets.

Commit discipline (conventions, 7): `enable_auto_commit=False`; a batch's
offsets are committed only after its database transaction committed; finished
offsets are also committed when partitions are revoked and on a graceful stop,
never after a crash (redelivery is the recovery, and folding is idempotent, so
a batch folded twice leaves the same rows). Unreadable records are counted,
logged with their position and skipped: they must not stop the line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from projector import metrics
from projector.fold import admissible, fold, suppressions
from projector.records import read_batch
from projector.settings import ProjectorSettings
from projector.store import StatusStore
from runtime.logs import get_logger

log = get_logger(__name__)

_POLL_TIMEOUT_MS = 500
# Beyond this without returning from a poll, /healthz reports the loop as stuck.
_POLL_HEALTH_SECONDS = 60.0

Records = Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class StalledError(RuntimeError):
    """The consumer has lag but received nothing for `stall_seconds`: restart it."""


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, projector: Projector) -> None:
        self._projector = projector

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._projector.commit_finished(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._projector.assignment_changed()


def make_consumer(settings: ProjectorSettings, *, group_id: str | None) -> AIOKafkaConsumer:
    """A consumer of the status topic with manual commits, reading from the start."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        client_id="broadcast-projector",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
        # Covers a revoke that commits while the broker is slow.
        rebalance_timeout_ms=30_000,
        max_poll_interval_ms=300_000,
    )


class Projector:
    """One member of the projector group; `run` until stopped (or idle, for tests)."""

    def __init__(self, settings: ProjectorSettings, store: StatusStore) -> None:
        self._settings = settings
        self._store = store
        self._consumer = make_consumer(settings, group_id=settings.group_id)
        # Offsets whose batch is in PostgreSQL but not yet committed to Kafka.
        self._finished: dict[TopicPartition, int] = {}
        self._last_progress = time.monotonic()
        self._last_poll = time.monotonic()
        self._last_records = time.monotonic()
        self._lag = 0
        self._closed = False

    async def start(self) -> None:
        self._consumer.subscribe([self._settings.topic], listener=_CommitOnRevoke(self))
        await self._consumer.start()

    async def close(self, *, commit: bool) -> None:
        """Leave the group; commit finished offsets first only when `commit` (graceful)."""
        if self._closed:
            return
        self._closed = True
        if commit:
            await self.commit_finished()
        await self._consumer.stop()

    def progress_age(self) -> float:
        """Seconds since a batch was committed or a poll found the partitions caught up."""
        return time.monotonic() - self._last_progress

    def poll_health(self) -> tuple[bool, str]:
        age = time.monotonic() - self._last_poll
        return age < _POLL_HEALTH_SECONDS, f"last poll {age:.1f}s ago"

    def progress_health(self) -> tuple[bool, str]:
        age = self.progress_age()
        ok = self._lag == 0 or age < self._settings.stall_seconds
        return ok, f"lag {self._lag}, last progress {age:.1f}s ago"

    def assignment_changed(self) -> None:
        self._last_records = time.monotonic()

    async def run(self, stop: asyncio.Event, *, until_idle: bool = False) -> None:
        """Fold batches until `stop` is set, or, with `until_idle`, until caught up."""
        while not stop.is_set():
            records: Records = await self._consumer.getmany(
                timeout_ms=_POLL_TIMEOUT_MS, max_records=self._settings.batch_size
            )
            self._last_poll = time.monotonic()
            if records:
                await self._project(records)
                self._last_records = self._last_progress = time.monotonic()
                await self._update_lag()
                continue
            await self._update_lag()
            if self._lag == 0:
                self._last_progress = time.monotonic()
            elif time.monotonic() - self._last_records > self._settings.stall_seconds:
                raise StalledError(f"lag {self._lag} and no record for a while")
            if until_idle and await self._caught_up():
                return

    async def _project(self, records: Records) -> None:
        started = time.perf_counter()
        batch = read_batch(record for partition in records.values() for record in partition)
        for invalid in batch.invalid:
            log.warning(
                "record_invalid",
                topic=invalid.topic,
                partition=invalid.partition,
                offset=invalid.offset,
                reason=invalid.reason,
            )
        usable = [update for update in batch.updates if admissible(update)]
        rows = fold(usable)
        found = suppressions(usable)
        await self._store.apply(list(rows.values()), list(found.values()))

        metrics.EVENTS.labels("folded").inc(len(usable))
        metrics.EVENTS.labels("invalid").inc(len(batch.invalid) + len(batch.updates) - len(usable))
        metrics.EVENTS.labels("ignored").inc(batch.ignored)
        metrics.ROWS.inc(len(rows))
        metrics.SUPPRESSIONS.inc(len(found))
        metrics.BATCHES.inc()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

        for tp, partition in records.items():
            if partition:
                self._finished[tp] = partition[-1].offset + 1
        await self.commit_finished()

    async def commit_finished(self, partitions: Collection[TopicPartition] | None = None) -> None:
        """Commit the finished offsets (of `partitions`, default all) that are still ours."""
        offsets = {
            tp: offset
            for tp, offset in self._finished.items()
            if partitions is None or tp in partitions
        }
        if not offsets:
            return
        assigned = self._consumer.assignment()
        for tp in [tp for tp in offsets if tp not in assigned]:
            # No longer ours: the next owner folds these records again, harmlessly.
            del offsets[tp]
            del self._finished[tp]
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as error:
            metrics.COMMIT_FAILURES.inc()
            log.warning("commit_refused", error=type(error).__name__)
            for tp in offsets:
                self._finished.pop(tp, None)
            return
        except KafkaError as error:
            # Kept: the next commit carries them (offsets only move forward).
            metrics.COMMIT_FAILURES.inc()
            log.warning("commit_failed", error=type(error).__name__)
            return
        for tp, offset in offsets.items():
            if self._finished.get(tp) == offset:
                del self._finished[tp]

    async def _update_lag(self) -> None:
        # Highwater marks come with fetches; a partition not fetched yet counts as 0.
        highwaters = {tp: self._consumer.highwater(tp) for tp in self._consumer.assignment()}
        lag = 0
        for tp, highwater in highwaters.items():
            if highwater is None:
                continue
            try:
                position = await self._consumer.position(tp)
            except IllegalStateError:
                continue  # revoked meanwhile
            lag += max(0, highwater - position)
        self._lag = lag
        metrics.LAG.set(lag)

    async def _caught_up(self) -> bool:
        assigned = list(self._consumer.assignment())
        if not assigned:
            return False
        ends = await self._consumer.end_offsets(assigned)
        for tp in assigned:
            if await self._consumer.position(tp) < ends[tp]:
                return False
        return True
