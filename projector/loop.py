"""The projector's consumer loop: poll, fold, store, then commit the offsets.

Commit discipline (conventions, 7): `enable_auto_commit=False`; a batch's
offsets are committed only after its database transaction committed; finished
offsets are also committed when partitions are revoked and on a graceful stop,
never after a crash (redelivery is the recovery, and folding is idempotent, so
a batch folded twice leaves the same rows). Unreadable records are counted,
logged with their position and skipped: they must not stop the line. Records
whose values cannot be stored, or whose fold PostgreSQL refuses, are set aside
in `status_rejects` in the batch's transaction (`projector.store`), so their
offsets are committed too.

A consumer that stops receiving while its partitions have records (aiokafka
issue 1037) is replaced in-process: after `stall_seconds` without a record, the
end offsets are asked for (a request of its own, so a silent fetcher cannot hide
the lag); if records wait, the finished offsets are committed, the consumer is
closed and a new one joins the group and resumes from the committed offsets.
Only when no new consumer can be started for `restart_give_up_seconds` does the
loop raise `StalledError` (the supervisor restarts the process).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from projector import metrics
from projector.records import Reject, read_batch
from projector.settings import ProjectorSettings
from projector.store import StatusStore
from runtime.logs import get_logger

log = get_logger(__name__)

_POLL_TIMEOUT_MS = 500
# Beyond this without returning from a poll, /healthz reports the loop as stuck.
_POLL_HEALTH_SECONDS = 60.0
# How long a replacement consumer may keep failing to start before the process exits.
RESTART_GIVE_UP_SECONDS = 300.0
_RESTART_MAX_BACKOFF_SECONDS = 10.0
_END_OFFSETS_TIMEOUT_SECONDS = 10.0

Records = Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class StalledError(RuntimeError):
    """The consumer stalled and no replacement could be started for a long time."""


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

    def __init__(
        self,
        settings: ProjectorSettings,
        store: StatusStore,
        *,
        restart_give_up_seconds: float = RESTART_GIVE_UP_SECONDS,
    ) -> None:
        self._settings = settings
        self._store = store
        self._restart_give_up_seconds = restart_give_up_seconds
        self._consumer = make_consumer(settings, group_id=settings.group_id)
        self.restarts = 0
        # Offsets whose batch is in PostgreSQL but not yet committed to Kafka.
        self._finished: dict[TopicPartition, int] = {}
        self._last_progress = time.monotonic()
        self._last_poll = time.monotonic()
        self._last_records = time.monotonic()
        self._lag = 0
        self._closed = False

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The current Kafka client (a new one after each restart)."""
        return self._consumer

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
            if time.monotonic() - self._last_records > self._settings.stall_seconds:
                if await self._behind():
                    await self._restart_consumer()
                # Checked again a full stall period from now, not on every empty poll.
                self._last_records = time.monotonic()
            if until_idle and await self._caught_up():
                return

    async def _behind(self) -> bool:
        """True when the broker holds records past our positions (asked, not cached)."""
        assigned = list(self._consumer.assignment())
        if not assigned:
            return False
        try:
            async with asyncio.timeout(_END_OFFSETS_TIMEOUT_SECONDS):
                ends = await self._consumer.end_offsets(assigned)
                positions = {tp: await self._consumer.position(tp) for tp in assigned}
        except (KafkaError, IllegalStateError, TimeoutError) as error:
            # A consumer that cannot even answer this is as stuck as a silent one.
            log.warning("projector_end_offsets_failed", error=type(error).__name__)
            return True
        behind: int = sum(max(0, ends[tp] - positions[tp]) for tp in assigned if tp in ends)
        self._lag = max(self._lag, behind)
        return behind > 0

    async def _restart_consumer(self) -> None:
        """Replace the Kafka client; it resumes from the committed offsets."""
        old = self._consumer
        log.warning(
            "projector_consumer_stalled", lag=self._lag, stall_seconds=self._settings.stall_seconds
        )
        await self.commit_finished()
        try:
            await old.stop()
        except KafkaError as error:
            log.warning("projector_consumer_stop_failed", error=type(error).__name__)
        # Offsets not committed are dropped: the new member re-reads them and folds them
        # again, which changes nothing.
        self._finished.clear()
        deadline = time.monotonic() + self._restart_give_up_seconds
        delay = 0.5
        while True:
            consumer = make_consumer(self._settings, group_id=self._settings.group_id)
            self._consumer = consumer
            try:
                await self.start()
            except KafkaError as error:
                await consumer.stop()
                if time.monotonic() >= deadline:
                    raise StalledError(
                        f"no new consumer could start for {self._restart_give_up_seconds:.0f}s"
                    ) from error
                log.warning("projector_consumer_restart_failed", error=type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RESTART_MAX_BACKOFF_SECONDS)
                continue
            break
        self.restarts += 1
        metrics.CONSUMER_RESTARTS.inc()
        log.warning("projector_consumer_restarted", restarts=self.restarts)

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
        written = await self._store.apply(batch.records, batch.rejects)
        for reject in written.new_rejects:
            _log_reject(reject)
            metrics.REJECTED_RECORDS.labels(reason=reject.reason).inc()

        rejected_updates = sum(len(r.record.updates) for r in [*batch.rejects, *written.refused])
        folded = len(batch.updates) - sum(len(r.record.updates) for r in written.refused)
        metrics.EVENTS.labels("folded").inc(folded)
        metrics.EVENTS.labels("rejected").inc(rejected_updates)
        metrics.EVENTS.labels("invalid").inc(len(batch.invalid) + batch.inadmissible)
        metrics.EVENTS.labels("ignored").inc(batch.ignored)
        metrics.ROWS.inc(written.rows)
        metrics.SUPPRESSIONS.inc(written.suppressions)
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


def _log_reject(reject: Reject) -> None:
    """Once per record: only rejects new to the table are logged (not on redelivery)."""
    log.warning(
        "record_rejected",
        topic=reject.record.topic,
        partition=reject.record.partition,
        offset=reject.record.offset,
        reason=reject.reason,
        sqlstate=reject.sqlstate,
        detail=reject.detail[:300],
    )
