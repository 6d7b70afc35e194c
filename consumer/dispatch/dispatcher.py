"""The sending side of the consumer: owns sender numbers and runs one worker per number.

Each ownership round (about a second) heartbeats this instance, counts live
instances, and takes locks on numbers with work up to a fair share, so two
instances split the numbers between them and one takes over what the other held
within seconds of its death. Campaign state changes arrive by LISTEN/NOTIFY, so a
pause or cancel stops sends waiting in memory within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from consumer.dispatch import metrics
from consumer.dispatch.budgets import (
    DEFAULT_READ_PER_MINUTE,
    DEFAULT_WRITE_PER_MINUTE,
    Learned,
    choose_budgets,
    learn_rate_limits,
)
from consumer.dispatch.context import AccountBook, CampaignStates, DispatchContext
from consumer.dispatch.health import TemplateHealth
from consumer.dispatch.ownership import SenderOwnership
from consumer.dispatch.pacing import RatePacer
from consumer.dispatch.reconcile import FailureReconciler
from consumer.dispatch.restart import RestartBackoff
from consumer.dispatch.settings import DispatchSettings
from consumer.dispatch.store import DispatchStore
from consumer.dispatch.tiers import tier_limit
from consumer.dispatch.worker import SenderWorker
from consumer.kirim.client import KirimClient, KirimTransportError
from runtime.db import TRANSIENT_ERRORS
from runtime.events import wait_any
from runtime.logs import get_logger

log = get_logger(__name__)

CAMPAIGN_STATE_CHANNEL = "campaign_state"
# Intake notifies it when a chunk adds pending rows: an ownership round and idle
# workers start at once instead of on their next tick.
LEDGER_PENDING_CHANNEL = "ledger_pending"
# The projector notifies it when a batch recorded new failures: the reconciler runs at once.
STATUS_FAILED_CHANNEL = "status_failed"
# Stops that lift by themselves once the cause is gone (checked on each accounts refresh).
_KEY_STOPS = ("invalid_api_key", "expired_api_key")
_CONNECTION_STOPS = ("account_not_connected",)
# A second without an answer and the write estimate is re-confirmed by a probe (pacing.py).
_PROBE_AFTER_SECONDS = 1.0


class Dispatcher:
    def __init__(
        self,
        settings: DispatchSettings,
        pool: asyncpg.Pool,
        database_url: str,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.instance_id = uuid.uuid4()
        self._pool = pool
        self._database_url = database_url
        self.store = DispatchStore(pool)
        self.client = KirimClient(
            settings.kirim_base_url,
            settings.kirim_api_key,
            timeout_seconds=settings.request_timeout_seconds,
        )
        self.ctx = DispatchContext(
            settings=settings,
            store=self.store,
            client=self.client,
            pacer=RatePacer(
                limit_per_minute=DEFAULT_WRITE_PER_MINUTE,
                updated_at=clock(),
                probe_after=_PROBE_AFTER_SECONDS,
            ),
            read_pacer=RatePacer(limit_per_minute=DEFAULT_READ_PER_MINUTE, updated_at=clock()),
            campaigns=CampaignStates(),
            accounts=AccountBook(),
            clock=clock,
            rng=rng or random.Random(),
        )
        self.workers: dict[str, tuple[SenderWorker, asyncio.Task[None]]] = {}
        self.reconciler = FailureReconciler(self.ctx)
        self._health = TemplateHealth(self.ctx)
        self.last_round_at = 0.0
        self._round_now = asyncio.Event()
        self._restarts = RestartBackoff()

    async def run(self, stop: asyncio.Event) -> None:
        ownership = SenderOwnership(
            self._database_url,
            f"consumer {socket.gethostname()}:{os.getpid()} {str(self.instance_id)[:8]}",
        )
        listener: asyncpg.Connection | None = None
        try:
            metrics.LAST_PROGRESS.set(self.ctx.clock())
            await self._learn_budgets(stop)
            await self._refresh_accounts()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._guarded("reconciler", self.reconciler.run, stop))
                tasks.create_task(self._guarded("accounts", self._accounts_loop, stop))
                while not stop.is_set():
                    if listener is None or listener.is_closed():
                        listener = await self._listen()
                    self._round_now.clear()
                    await self._ownership_round(ownership, tasks)
                    await wait_any(
                        stop, self._round_now, within=self.settings.ownership_interval_seconds
                    )
                await self._halt_all()
        finally:
            await ownership.close()
            if listener is not None and not listener.is_closed():
                await listener.close()
            await self._forget_instance()
            await self.client.close()

    async def _guarded(
        self,
        part: str,
        loop: Callable[[asyncio.Event], Awaitable[None]],
        stop: asyncio.Event,
    ) -> None:
        """Run `loop(stop)`; restart it after a backoff whenever it fails unexpectedly."""
        while not stop.is_set():
            started = self.ctx.clock()
            try:
                await loop(stop)
            except Exception as error:  # the isolation boundary of one part
                delay = self._restarts.failed(part, started, self.ctx.clock())
                metrics.WORKER_CRASHES.labels(part).inc()
                log.exception("dispatch_part_crashed", part=part, error=repr(error), delay=delay)
                await wait_any(stop, within=delay)

    async def _supervised(self, worker: SenderWorker) -> None:
        """Run one sender's worker; a failure is that sender's alone (module docstring)."""
        started = self.ctx.clock()
        try:
            await worker.run()
        except Exception as error:  # the isolation boundary of one sender
            key = f"sender:{worker.phone_number_id}"
            delay = self._restarts.failed(key, started, self.ctx.clock())
            metrics.WORKER_CRASHES.labels("sender").inc()
            log.exception(
                "sender_worker_crashed",
                sender=worker.phone_number_id,
                error=repr(error),
                restart_in=delay,
            )
            self._round_now.set()

    async def _learn_budgets(self, stop: asyncio.Event) -> None:
        """The organisation's write and read budgets, from settings or `GET /v1/me`
        (budgets.py: asked for a bounded while, then defaults)."""
        configured = (self.settings.write_per_minute, self.settings.read_per_minute)
        learned = Learned(None, None)
        if None in configured:
            # Monotonic, not ctx.clock: the bound is on real waiting, whatever clock tests inject.
            learned = await learn_rate_limits(self.client.rate_limits, stop, clock=time.monotonic)
        budgets = choose_budgets(configured, learned)
        self.ctx.pacer.limit_per_minute = float(budgets.write_per_minute)
        self.ctx.read_pacer.limit_per_minute = float(budgets.read_per_minute)
        # A defaulted write budget lasts only until the first send's X-RateLimit-Limit.
        emit = log.warning if "default" in (budgets.write_from, budgets.read_from) else log.info
        emit(
            "rate_budgets",
            write_per_minute=budgets.write_per_minute,
            write_from=budgets.write_from,
            read_per_minute=budgets.read_per_minute,
            read_from=budgets.read_from,
            me_problem=learned.problem,
        )

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            connection: asyncpg.Connection = await asyncpg.connect(self._database_url, timeout=10)
            await connection.add_listener(CAMPAIGN_STATE_CHANNEL, self._on_campaign_state)
            await connection.add_listener(LEDGER_PENDING_CHANNEL, self._on_ledger_pending)
            await connection.add_listener(STATUS_FAILED_CHANNEL, self._on_status_failed)
        except (*TRANSIENT_ERRORS, asyncpg.PostgresError) as error:  # type: ignore[misc]
            log.warning("listen_retry", error=repr(error))
            return None
        return connection

    def _on_campaign_state(
        self, _conn: asyncpg.Connection | object, _pid: int, _channel: str, payload: object
    ) -> None:
        try:
            campaign_id = uuid.UUID(str(payload).strip())
        except ValueError:
            return
        asyncio.get_running_loop().create_task(self._refresh_campaign(campaign_id))

    def _on_ledger_pending(
        self, _conn: asyncpg.Connection | object, _pid: int, _channel: str, _payload: object
    ) -> None:
        self._round_now.set()
        self.ctx.wake()

    def _on_status_failed(
        self, _conn: asyncpg.Connection | object, _pid: int, _channel: str, _payload: object
    ) -> None:
        self.reconciler.wake.set()

    async def _refresh_campaign(self, campaign_id: uuid.UUID) -> None:
        try:
            states = await self.store.campaign_states([campaign_id])
        except TRANSIENT_ERRORS:
            return
        self.ctx.campaigns.update(states)
        self.ctx.wake()

    async def _ownership_round(self, ownership: SenderOwnership, tasks: asyncio.TaskGroup) -> None:
        self._reap_finished()
        if not await ownership.alive():
            log.error("sender_ownership_lost", owned=sorted(self.workers))
            await self._halt_all()
            return
        try:
            await self.store.heartbeat(self.instance_id)
            live = await self.store.live_instances(self.settings.instance_timeout_seconds)
            senders = await self._senders_with_work()
            stopped = await self.store.stopped_senders()
            metrics.STOPPED_SENDERS.set(len(stopped))
            fair_share = math.ceil(len(senders) / max(live, 1))
            # Each instance tries the numbers in its own order, so they do not all
            # race for the same one first.
            order = sorted(senders, key=lambda pid: hash((pid, self.instance_id)))
            now = self.ctx.clock()
            for phone_number_id in order:
                if len(self.workers) >= fair_share:
                    break
                if phone_number_id in self.workers:
                    continue
                if not self._restarts.ready(f"sender:{phone_number_id}", now):
                    continue
                if await ownership.try_own(phone_number_id):
                    self._start_worker(phone_number_id, tasks)
            surplus = len(self.workers) - max(fair_share, 1)
            for phone_number_id in list(self.workers)[: max(surplus, 0)]:
                # Handed to another instance: its gauges are that instance's to export.
                self.workers[phone_number_id][0].halt.set()
                metrics.forget_sender(phone_number_id)
            self._reap_finished()
            for phone_number_id in list(ownership.owned):
                if phone_number_id not in self.workers:
                    # Finished: the last quota figures stay visible while the number idles.
                    await ownership.disown(phone_number_id)
        except TRANSIENT_ERRORS as error:
            log.warning("ownership_round_retry", error=repr(error))
        metrics.OWNED_SENDERS.set(len(self.workers))
        self.last_round_at = self.ctx.clock()

    async def _senders_with_work(self) -> list[str]:
        if self.ctx.organisation_stopped.is_set():
            return []
        senders = await self.store.senders_with_work()
        only = self.settings.only_senders
        return [pid for pid in senders if pid in only] if only else senders

    def _start_worker(self, phone_number_id: str, tasks: asyncio.TaskGroup) -> None:
        worker = SenderWorker(self.ctx, phone_number_id)
        task = tasks.create_task(self._supervised(worker))
        self.workers[phone_number_id] = (worker, task)
        log.info("sender_owned", sender=phone_number_id, instance=str(self.instance_id))

    def _reap_finished(self) -> None:
        for phone_number_id, (_, task) in list(self.workers.items()):
            if task.done():
                del self.workers[phone_number_id]

    async def _halt_all(self) -> None:
        """Finish in-flight sends within the grace period; the rest stays pending."""
        for worker, _ in self.workers.values():
            worker.halt.set()
        running = [task for _, task in self.workers.values() if not task.done()]
        if running:
            await asyncio.wait(running, timeout=self.settings.drain_seconds)
        for phone_number_id in [p for p, (_, t) in self.workers.items() if t.done()]:
            del self.workers[phone_number_id]
            metrics.forget_sender(phone_number_id)

    async def _accounts_loop(self, stop: asyncio.Event) -> None:
        while not await wait_any(stop, within=self.settings.accounts_refresh_seconds):
            await self._refresh_accounts()

    async def _refresh_accounts(self) -> None:
        """Learn tiers and connection states; lift stops whose cause has gone. An
        unreachable API or database skips this refresh; the next one tries again."""
        try:
            await self._refresh_accounts_once()
        except (KirimTransportError, *TRANSIENT_ERRORS) as error:  # type: ignore[misc]
            log.warning("accounts_refresh_failed", error=repr(error))
        except asyncpg.PostgresError as error:
            # An account the ledger cannot record (a value out of range): the next
            # refresh tries again; sends go on with the accounts known so far.
            log.exception("accounts_refresh_refused", error=repr(error))

    async def _refresh_accounts_once(self) -> None:
        accounts = await self.client.accounts()
        stopped = await self.store.stopped_senders()
        self.ctx.accounts.accounts = {a.phone_number_id: a for a in accounts}
        for account in accounts:
            before = await self.store.record_tier(account.phone_number_id, account.tier)
            if before is not None:
                await self._tier_changed(account.phone_number_id, before, account.tier)
            # A fall of the quality rating pauses the number's guarded campaigns.
            await self._health.quality_observed(account.phone_number_id, account.quality_rating)
        # The accounts call authenticated, so the key works again.
        if any(reason in _KEY_STOPS for reason in stopped.values()):
            for phone_number_id in stopped:
                await self.store.resume_sender(phone_number_id, _KEY_STOPS)
            self.ctx.organisation_stopped.clear()
            log.info("senders_resumed", reason="api_key_works")
        for phone_number_id, reason in stopped.items():
            known = self.ctx.accounts.get(phone_number_id)
            if reason in _CONNECTION_STOPS and known and known.connected:
                await self.store.resume_sender(phone_number_id, _CONNECTION_STOPS)
                log.info("senders_resumed", sender=phone_number_id, reason="reconnected")

    async def _tier_changed(self, phone_number_id: str, before: int, tier: int | None) -> None:
        """A tier learned mid-campaign. Every claim plans with the tier then known, so a
        fall needs nothing more; after a rise, rows deferred for the old tier's window
        (and a hold from the API's quota_exceeded) need not wait for it."""
        default = self.settings.default_tier
        old, new = tier_limit(before, default), tier_limit(tier, default)
        if old == new:
            return
        log.info("tier_changed", sender=phone_number_id, before=old, after=new)
        if new > old:
            await self.store.tier_rose(phone_number_id, new, self.ctx.clock())
            self.ctx.wake()

    async def _forget_instance(self) -> None:
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self.store.forget_instance(self.instance_id)

    def healthy(self) -> tuple[bool, str]:
        age = self.ctx.clock() - self.last_round_at
        limit = max(30.0, self.settings.ownership_interval_seconds * 30)
        if self.last_round_at and age > limit:
            return False, f"no ownership round for {age:.0f}s"
        return True, f"owns {len(self.workers)} sender(s)"
