"""The intake consumer: `broadcast.requests` -> `EventHandler`, with commit discipline.

Shape: one poll loop and `workers` worker tasks. The poll loop only fetches,
hands records to the worker owning their partition (partition % workers, so
each partition is handled in order), commits, and measures lag; it never waits
on the database, so `getmany()` keeps being called (heartbeats and
`max_poll_interval_ms` stay fine even while a worker waits out an outage).
Each worker stages its next event (`EventHandler.stage`: no effects) while it
finishes the current one (`EventHandler.finish`: the writes), in order.

Commit discipline:
- an offset is committed (as offset + 1) only after its event's effect is
  durable (`EventHandler.handle` returned), every `commit_interval`, on
  graceful stop and in `on_partitions_revoked`; never on a crash;
- on revocation, work already running for the revoked partitions gets the
  grace period to finish (then it is cancelled: not committed, redelivered to
  the next owner); work still queued for them is dropped.

Backpressure: past `buffer_events` fetched-but-unfinished events every assigned
partition is paused; below half of it they are resumed. Memory is bounded by the
buffer and the fetch sizes.

Drain-and-exit: `until_idle` returns once every assigned partition is handled
up to its end offset and committed; `max_events` returns after that many events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from consumer.intake import metrics
from consumer.intake.handler import EventHandler, Staged
from consumer.intake.liveness import Liveness
from consumer.settings import ConsumerSettings
from runtime.logs import get_logger
from runtime.observe import HealthCheck

log = get_logger(__name__)

_POLL_TIMEOUT_MS = 200
_LAG_INTERVAL_SECONDS = 5.0
_OFFSETS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class _Item:
    record: ConsumerRecord
    tp: TopicPartition
    epoch: int


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: IntakeLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._loop.revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


class IntakeLoop:
    def __init__(
        self,
        settings: ConsumerSettings,
        handler: EventHandler,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        self._queues: list[asyncio.Queue[_Item | None]] = [
            asyncio.Queue() for _ in range(settings.intake_workers)
        ]
        self._epochs: dict[TopicPartition, int] = {}
        self._inflight: dict[int, tuple[_Item, asyncio.Task[str]]] = {}
        self._done: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        # Fetched and not finished: queued, staged ahead or running.
        self._unfinished = 0
        self._paused = False
        self._stopping = False
        self._crashed = False
        self.handled = 0
        self.liveness = Liveness(
            stall_seconds=settings.intake_stall_seconds,
            stall_exit=settings.intake_stall_exit,
            clock=clock,
        )
        self._last_lag_check = float("-inf")
        metrics.BUFFERED.set_function(lambda: sum(q.qsize() for q in self._queues))

    def health_checks(self) -> Mapping[str, HealthCheck]:
        return self.liveness.health_checks()

    # -- running ----------------------------------------------------------------------

    def _new_consumer(self) -> AIOKafkaConsumer:
        s = self._settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            group_id=s.consumer_group,
            client_id=f"{s.consumer_group}-intake",
            enable_auto_commit=False,
            # A new group must not skip requests published before it first joined.
            auto_offset_reset="earliest",
            # A transactional producer's aborted events must never become campaigns.
            isolation_level="read_committed",
            max_poll_records=s.intake_buffer_events,
            fetch_max_bytes=s.intake_fetch_max_bytes,
            session_timeout_ms=s.intake_session_timeout_ms,
            heartbeat_interval_ms=max(s.intake_session_timeout_ms // 3, 100),
            max_poll_interval_ms=s.intake_max_poll_interval_ms,
            # Revocation waits up to the grace period for running work, then commits.
            rebalance_timeout_ms=int(s.intake_grace_seconds * 1000) + 30_000,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set (or idle / `max_events` in drain modes)."""
        consumer = self._new_consumer()
        consumer.subscribe([self._settings.requests_topic], listener=_Rebalance(self))
        await consumer.start()
        self._consumer = consumer
        workers = [asyncio.create_task(self._work(i)) for i in range(len(self._queues))]
        try:
            await self._poll(consumer, stop, workers)
            await self._drain(workers)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.intake_grace_seconds):
                    await self._commit(consumer)
            log.info("intake_stopped", handled=self.handled)
        except BaseException:
            # A crash commits nothing more: redelivery is the recovery path.
            self._crashed = True
            for worker in workers:
                worker.cancel()
            for _, task in list(self._inflight.values()):
                task.cancel()
            raise
        finally:
            await asyncio.gather(*workers, return_exceptions=True)
            self._consumer = None
            await consumer.stop()

    async def _poll(
        self, consumer: AIOKafkaConsumer, stop: asyncio.Event, workers: list[asyncio.Task[None]]
    ) -> None:
        s = self._settings
        last_commit = self._clock()
        while not stop.is_set():
            for worker in workers:
                if worker.done():
                    worker.result()  # re-raises the worker's crash
                    raise RuntimeError("an intake worker exited")
            batch = await consumer.getmany(timeout_ms=_POLL_TIMEOUT_MS)
            now = self._clock()
            for tp, records in batch.items():
                epoch = self._epochs.setdefault(tp, 0)
                queue = self._queues[tp.partition % len(self._queues)]
                for record in records:
                    queue.put_nowait(_Item(record, tp, epoch))
                    self._unfinished += 1
            if batch:
                self.liveness.fetched()
            self._apply_backpressure(consumer)
            if now - last_commit >= s.intake_commit_interval_seconds or not batch:
                await self._commit(consumer)
                last_commit = now
            if s.intake_max_events and self.handled >= s.intake_max_events:
                return
            # Drain mode checks for idleness whenever it may be idle; otherwise lag is
            # measured every few seconds (it costs a request to the broker).
            idle_candidate = s.intake_until_idle and not batch and not self._unfinished
            if idle_candidate or now - self._last_lag_check >= _LAG_INTERVAL_SECONDS:
                await self._measure_lag(consumer)
                self._last_lag_check = now
                if idle_candidate and self._idle(consumer):
                    return
            self.liveness.observe(has_work=self._unfinished > 0, paused=self._paused)

    def _idle(self, consumer: AIOKafkaConsumer) -> bool:
        assignment = consumer.assignment()
        return (
            bool(assignment)
            and self.liveness.lag == 0
            and all(self._committed.get(tp) == offset for tp, offset in self._done.items())
        )

    def _apply_backpressure(self, consumer: AIOKafkaConsumer) -> None:
        limit = self._settings.intake_buffer_events
        if self._unfinished >= limit:
            # Re-applied every turn: partitions assigned while paused must pause too.
            consumer.pause(*consumer.assignment())
            if not self._paused:
                log.info("intake_backpressure_on", unfinished=self._unfinished)
            self._paused = True
        elif self._paused and self._unfinished <= limit // 2:
            consumer.resume(*consumer.paused())
            self._paused = False
        metrics.BACKPRESSURE.set(1 if self._paused else 0)

    async def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Unhandled events on our partitions: end offset minus the next offset to handle.

        End offsets come from a separate request, not from fetch responses, so a
        consumer whose fetching silently stopped (aiokafka issue 1037) still sees lag.
        """
        assignment = list(consumer.assignment())
        if not assignment:
            self.liveness.measured(fetchable=0, lag=0)
            return
        try:
            async with asyncio.timeout(_OFFSETS_TIMEOUT_SECONDS):
                ends = await consumer.end_offsets(assignment)
                positions = {tp: await consumer.position(tp) for tp in assignment}
        except (KafkaError, TimeoutError, IllegalStateError) as error:
            log.warning("intake_lag_unknown", error=type(error).__name__)
            return
        fetchable = sum(max(0, ends[tp] - positions[tp]) for tp in assignment if tp in ends)
        self.liveness.measured(fetchable=fetchable, lag=fetchable + self._unfinished)

    # -- committing and rebalancing -----------------------------------------------------

    async def _commit(
        self, consumer: AIOKafkaConsumer, only: set[TopicPartition] | None = None
    ) -> None:
        offsets = {
            tp: offset
            for tp, offset in self._done.items()
            if self._committed.get(tp) != offset and (only is None or tp in only)
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as error:
            # CommitFailedError / IllegalStateError: the group moved on, and the new owner
            # re-handles from the last commit. Others: the next commit retries. Either way
            # redelivery is harmless, so a failed commit is not worth a crash.
            metrics.COMMITS.labels(outcome="failed").inc()
            log.warning("intake_commit_failed", error=type(error).__name__)
            return
        metrics.COMMITS.labels(outcome="ok").inc()
        self._committed.update(offsets)

    async def revoke(self, revoked: set[TopicPartition]) -> None:
        """Stop work on `revoked`, let running work finish (bounded), commit what is done."""
        for tp in revoked:
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
        running = [task for item, task in self._inflight.values() if item.tp in revoked]
        if running:
            _, late = await asyncio.wait(running, timeout=self._settings.intake_grace_seconds)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                log.warning("intake_revoke_abandoned", events=len(late))
        consumer = self._consumer
        if consumer is not None and not self._crashed:
            await self._commit(consumer, only=revoked)
        for tp in revoked:
            self._done.pop(tp, None)
            self._committed.pop(tp, None)
        if revoked:
            log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    # -- workers ------------------------------------------------------------------------

    def _next_item(self, queue: asyncio.Queue[_Item | None]) -> _Item | None:
        """The next queued event of a partition still ours, without waiting; None if none."""
        while not queue.empty():
            item = queue.get_nowait()
            if item is None:
                queue.put_nowait(None)  # keep the stop marker for the worker loop
                return None
            if self._epochs.get(item.tp) == item.epoch:
                return item
            self._unfinished -= 1  # its partition was revoked after it was fetched
        return None

    def _stage(self, item: _Item) -> asyncio.Task[Staged]:
        return asyncio.create_task(self._handler.stage(item.record))

    async def _work(self, index: int) -> None:
        """Handle this worker's partitions in order, staging one event ahead.

        While event N is finished (its database writes), event N+1 is staged (decoded,
        its phones parsed, its rows expanded): the CPU work overlaps the round trips.
        Staging has no effects, so a staged event that is then dropped costs nothing.
        """
        queue = self._queues[index]
        ahead: tuple[_Item, asyncio.Task[Staged]] | None = None
        try:
            while True:
                if ahead is None:
                    item = await queue.get()
                    if item is None:
                        return
                    if self._epochs.get(item.tp) != item.epoch:
                        self._unfinished -= 1  # revoked after it was fetched
                        continue
                    staging = self._stage(item)
                else:
                    (item, staging), ahead = ahead, None
                    if self._stopping or self._epochs.get(item.tp) != item.epoch:
                        staging.cancel()
                        self._unfinished -= 1
                        continue
                task = asyncio.create_task(self._handle(item, staging))
                self._inflight[index] = (item, task)
                try:
                    await asyncio.wait({staging})
                    if not self._stopping and (following := self._next_item(queue)):
                        ahead = (following, self._stage(following))
                    await asyncio.wait({task})
                finally:
                    del self._inflight[index]
                    self._unfinished -= 1
                if not task.cancelled():
                    task.result()  # an unexpected error crashes the service
        finally:
            if ahead is not None:
                ahead[1].cancel()
                self._unfinished -= 1

    async def _handle(self, item: _Item, staging: asyncio.Task[Staged]) -> str:
        outcome = await self._handler.finish(item.record, await staging)
        # Durable now; `revoke` waits for this task, so the offset is recorded first.
        self._done[item.tp] = item.record.offset + 1
        self.handled += 1
        self.liveness.progressed()
        return outcome

    async def _drain(self, workers: list[asyncio.Task[None]]) -> None:
        """Graceful stop: drop queued work, give running work the grace period, stop workers."""
        self._stopping = True
        for queue in self._queues:
            while not queue.empty():
                if queue.get_nowait() is not None:
                    self._unfinished -= 1
            queue.put_nowait(None)
        _, late = await asyncio.wait(workers, timeout=self._settings.intake_grace_seconds)
        if late:
            for _, task in list(self._inflight.values()):
                task.cancel()
            await asyncio.wait(late)
        for worker in workers:
            if not worker.cancelled():
                worker.result()
