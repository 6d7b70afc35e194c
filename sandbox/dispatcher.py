"""Signed `message.status` webhooks: a timer (due queue), a bounded queue, N workers.

`enqueue(message)` plans the message's status deliveries (`delivery.plan_statuses`)
on the due queue. The scheduler task moves due deliveries into a bounded
`asyncio.Queue` (it waits when the workers are behind); each worker POSTs one
attempt with httpx over the aiohttp transport, signed afresh, and reschedules
retryable failures along the time-scaled retry schedule. The URL, secrets and
perturbations are read from the running config at each step, so a config
patch applies to deliveries already queued. `reset()` drops everything queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import httpx
from httpx_aiohttp import AiohttpTransport

from runtime.logs import get_logger
from sandbox.clock import Clock
from sandbox.config import RuntimeConfig
from sandbox.delivery import classify, plan_statuses, retry_delay
from sandbox.duequeue import DueQueue
from sandbox.engine import Engine
from sandbox.identifiers import delivery_id
from sandbox.metrics import SandboxMetrics
from sandbox.payload import StatusEvent, status_body
from sandbox.signature import sign
from sandbox.store import Message

log = get_logger("sandbox.webhooks")


@dataclass(slots=True)
class _Delivery:
    event: StatusEvent
    generation: int
    attempts: int = 0
    body: bytes = b""


class _StoppedError(Exception):
    """Raised inside the task group to end it when the stop event is set."""


class WebhookDispatcher:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        metrics: SandboxMetrics,
        *,
        concurrency: int,
        queue_size: int,
        backlog_max: int,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._metrics = metrics
        self._concurrency = concurrency
        self._backlog_max = backlog_max
        self._due: DueQueue[_Delivery] = DueQueue()
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue(maxsize=queue_size)
        self._wake = asyncio.Event()
        self._generation = 0
        self._client = httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=concurrency)),
            follow_redirects=False,
        )

    def pending(self) -> int:
        return len(self._due) + self._queue.qsize()

    def reset(self) -> None:
        self._generation += 1
        self._due.clear()

    def enqueue(self, message: Message) -> None:
        config = self._engine.config
        account = config.accounts.get(message.phone_number_id)
        if not config.webhooks.url or account is None:
            return
        audit = self._engine.audit
        steps = message.timeline.steps
        planned = plan_statuses(steps, config.webhooks, config.time_scale, self._engine.webhook_rng)
        if any(step == "delivered" for step, _ in steps) and not any(
            item.status == "delivered" for item in planned
        ):
            audit.webhook("skipped_delivered")
        for item in planned:
            if len(self._due) >= self._backlog_max:
                audit.webhook("dropped_backlog")
                continue
            audit.webhook("events")
            audit.webhook("duplicates", item.duplicate)
            audit.webhook("reordered", item.reordered)
            event = StatusEvent(
                message_id=message.id,
                phone_number_id=message.phone_number_id,
                display_phone_number=account.phone_number.lstrip("+"),
                waba_id=account.waba_id,
                wamid=message.wamid,
                recipient_id=message.to.lstrip("+"),
                status=item.status,
                timestamp=int(next(at for step, at in steps if step == item.status)),
                category=_category(config, message.template),
                failure=message.failure,
            )
            self._due.push(item.due, _Delivery(event, self._generation))
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; what is still queued then is dropped."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._schedule())
                for _ in range(self._concurrency):
                    group.create_task(self._work())
                group.create_task(_raise_when(stop))
        except* _StoppedError:
            pass
        finally:
            await self._client.aclose()

    async def _schedule(self) -> None:
        while True:
            self._wake.clear()
            for delivery in self._due.pop_due(self._clock.now()):
                await self._queue.put(delivery)
            next_due = self._due.next_due()
            if next_due is None:
                await self._wake.wait()
                continue
            delay = next_due - self._clock.now()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._attempt(delivery)
            finally:
                self._queue.task_done()

    async def _attempt(self, delivery: _Delivery) -> None:
        config = self._engine.config
        audit = self._engine.audit
        options = config.webhooks
        if delivery.generation != self._generation:
            return  # queued before a reset: forgotten with the rest of that run
        if not options.url:
            audit.webhook("abandoned")
            return
        if not delivery.body:
            delivery.body = status_body(delivery.event)
        delivery.attempts += 1
        timestamp = int(self._clock.now() + options.clock_skew_seconds)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Kirim-Webhooks/sandbox",
            "X-Kirim-Source": "meta",
            "X-Kirim-Event": "message.status",
            "X-Kirim-Event-Id": delivery.event.wamid,
            "X-Kirim-Delivery-Id": delivery_id(),
            "X-Kirim-Attempt": str(delivery.attempts),
            options.signature_header: sign(delivery.body, options.secrets, timestamp),
        }
        status: int | None
        try:
            response = await self._client.post(
                options.url, content=delivery.body, headers=headers, timeout=options.timeout_seconds
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            status = None
            log.debug("webhook_transport_error", error=type(exc).__name__)
        if delivery.generation != self._generation:
            return  # a reset happened meanwhile: this attempt belongs to the forgotten run
        audit = self._engine.audit
        audit.webhook("attempts")
        audit.webhook("network_errors", status is None)
        verdict = classify(status)
        self._metrics.webhook_attempt(verdict)
        if verdict == "done":
            audit.webhook("succeeded")
        elif verdict == "final":
            audit.webhook("failed_final")
            log.warning("webhook_refused", status=status, message_id=delivery.event.message_id)
        else:
            self._retry(delivery, config)

    def _retry(self, delivery: _Delivery, config: RuntimeConfig) -> None:
        audit = self._engine.audit
        options = config.webhooks
        delay = retry_delay(
            options.schedule_seconds, delivery.attempts, options.jitter, self._engine.webhook_rng
        )
        if delay is None:
            audit.webhook("exhausted")
            log.warning("webhook_exhausted", message_id=delivery.event.message_id)
            return
        audit.webhook("retried")
        self._due.push(self._clock.now() + delay / config.time_scale, delivery)
        self._wake.set()


def _category(config: RuntimeConfig, template: str | None) -> str:
    found = config.templates.get(template) if template is not None else None
    return found.category if found is not None else "SERVICE"


async def _raise_when(stop: asyncio.Event) -> None:
    await stop.wait()
    raise _StoppedError
