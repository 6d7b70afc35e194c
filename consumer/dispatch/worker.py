"""One sender number's send loop, run by the instance that owns the number.

Each round: read the number's campaigns, take up to a second's worth of due
recipients shared round-robin between campaigns, let the quota planner split them
into sends and deferrals (recorded in one transaction with the contacts they use),
then send each one paced to the organisation's rate, at most the tier's
concurrency in flight. Results go to the ledger in batches.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass

from consumer.dispatch import metrics
from consumer.dispatch.context import DispatchContext
from consumer.dispatch.health import TemplateHealth
from consumer.dispatch.lanes import BULK, LANES, TRANSACTIONAL, Lane, lane_of, plan_behind
from consumer.dispatch.lookup import message_state
from consumer.dispatch.outcome import row_result, within_key_window
from consumer.dispatch.policy import (
    DISPATCH_ERROR,
    Accepted,
    Answer,
    Decision,
    Defer,
    GiveUp,
    Retry,
    Scope,
    Stop,
    anomaly_of,
    classify_response,
    classify_transport_error,
)
from consumer.dispatch.quiet_deferral import QuietDeferral
from consumer.dispatch.quota import QuotaPlan, QuotaSnapshot, window_start
from consumer.dispatch.request import idempotency_key, template_body
from consumer.dispatch.results import ResultWriter
from consumer.dispatch.schedule import interleave
from consumer.dispatch.settle import InDoubt, candidates, recipient_id
from consumer.dispatch.slots import Slots
from consumer.dispatch.store import Budget, Campaign, DueRow
from consumer.dispatch.tiers import UNLIMITED, concurrency_for, tier_limit
from consumer.kirim.answers import printable
from consumer.kirim.client import KirimTransportError
from runtime.db import TRANSIENT_ERRORS, retrying
from runtime.events import wait_any
from runtime.logs import get_logger, mask_phone

log = get_logger(__name__)

_IDLE_SECONDS = 1.0
_LANE_IDLE_SECONDS = 5.0
# The child counted on every accepted send, looked up once.
_ACCEPTED = metrics.SENDS.labels("accepted", "")


@dataclass(frozen=True, slots=True)
class _Batch:
    """Recipients claimed for sending, with the campaigns they belong to."""

    rows: list[DueRow]
    campaigns: dict[uuid.UUID, Campaign]
    claimed_at: float
    lane: Lane = BULK


class SenderWorker:
    def __init__(self, ctx: DispatchContext, phone_number_id: str) -> None:
        self.ctx = ctx
        self.phone_number_id = phone_number_id
        self.token = uuid.uuid4()
        # Set to make this worker finish its in-flight sends and return.
        self.halt = asyncio.Event()
        self._health = TemplateHealth(ctx)
        self._quiet = QuietDeferral(ctx, phone_number_id, self.token)
        self._writer = ResultWriter(
            ctx.store,
            self.token,
            ctx.settings.flush_seconds,
            recipient_of=self._recipient_of,
            on_written=self._health.count_sends,
        )
        self._sender_stopped = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._in_flight_gauge = metrics.IN_FLIGHT.labels(phone_number_id)
        # Shared by consecutive rounds, so the next claim overlaps the last sends;
        # resized on each claim to the tier then in force.
        self._slots = Slots(self._limits()[1], ctx.settings.bulk_min_share)
        # Priority lanes (lanes.py): one claim-and-send loop each; the worker ends once
        # every lane has found the number with nothing left to do.
        self._finished: set[Lane] = set()
        self._all_finished = asyncio.Event()
        self._lane_finished = asyncio.Event()
        self._due: dict[Lane, int] = {}

    async def _recipient_of(self, message_id: str) -> str | None:
        try:
            state = await message_state(self.ctx, self.phone_number_id, message_id)
        except KirimTransportError:
            return None
        return state.to if state else None

    def _halted(self) -> bool:
        return self.halt.is_set() or self._sender_stopped or self.ctx.organisation_stopped.is_set()

    async def run(self) -> None:
        """Send until the number has no work or the worker is halted, then drain.

        Anything unexpected ends this worker (and its in-flight sends) with the error;
        the dispatcher restarts it with a backoff. Its claimed rows are taken again by
        the next worker with the same keys, so the API replays what had landed.
        """
        writer_done = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._writer.run(writer_done))
            try:
                async with asyncio.TaskGroup() as lanes:
                    for lane in LANES:
                        lanes.create_task(self._rounds(tasks, lane))
                await self._wait_in_flight()
            finally:
                writer_done.set()

    async def _wait_in_flight(self) -> None:
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    async def _rounds(self, tasks: asyncio.TaskGroup, lane: Lane) -> None:
        """Claim, then send, the campaigns of one lane; the next claim runs while this
        batch is sent, so the database round trips between batches leave no gap in the
        sending."""
        backoff = 0.1
        prefetch: asyncio.Task[_Batch | bool] | None = None
        try:
            while not self._halted():
                try:
                    claimed = await (prefetch or self._claim(lane))
                except TRANSIENT_ERRORS as error:
                    log.warning(
                        "dispatch_round_retry", sender=self.phone_number_id, error=repr(error)
                    )
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                finally:
                    prefetch = None
                backoff = 0.1
                if claimed is False:
                    if await self._finish(lane):
                        return
                    continue
                if isinstance(claimed, _Batch):
                    prefetch = asyncio.create_task(self._claim(lane))
                    await self._send_all(claimed, tasks)
        finally:
            if prefetch is not None:
                await self._abandon(prefetch)

    async def _finish(self, lane: Lane) -> bool:
        """This lane found nothing left to do: True once every lane has. Until then it
        keeps looking, since the other lane's campaigns may be followed by its own."""
        self._finished.add(lane)
        self._lane_finished.set()  # an idle lane's wait ends: it looks whether it is done too
        if not self._finished.issuperset(LANES):
            self.ctx.work_arrived.clear()  # as _idle does: the event may be left set
            await self._sleep(_IDLE_SECONDS, self.ctx.work_arrived, self._all_finished)
        if self._finished.issuperset(LANES):
            self._all_finished.set()
            return True
        self._finished.discard(lane)
        return False

    async def _abandon(self, prefetch: asyncio.Task[_Batch | bool]) -> None:
        """A batch claimed ahead but never sent goes back, untouched, to pending."""
        try:
            claimed = await prefetch
        except TRANSIENT_ERRORS:
            return  # its rows keep this token; the next owner takes them anyway
        if isinstance(claimed, _Batch):
            await retrying(self.ctx.store.release_rows, claimed.rows, self.token)

    def _limits(self) -> tuple[int, int]:
        account = self.ctx.accounts.get(self.phone_number_id)
        limit = tier_limit(account.tier if account else None, self.ctx.settings.default_tier)
        return limit, concurrency_for(limit, self.ctx.settings.concurrency)

    async def _claim(self, lane: Lane) -> _Batch | bool:
        """Claim the lane's next batch; False when the number has nothing left to do,
        True when there was nothing to send this time (after an idle wait)."""
        ctx, settings = self.ctx, self.ctx.settings
        seen = ctx.arrivals
        sender = await ctx.store.sender_state(self.phone_number_id)
        if sender.stopped:
            return False
        account = ctx.accounts.get(self.phone_number_id)
        if account is not None and not account.connected:
            await self._stop(
                Stop(Scope.SENDER, "account_not_connected", resumes_automatically=True), None
            )
            return False
        campaigns = await ctx.store.sender_campaigns(self.phone_number_id)
        if not campaigns:
            return False
        ctx.campaigns.update({c.campaign_id: c.state for c in campaigns})
        now = ctx.clock()
        if not any(lane_of(c.priority) == lane for c in campaigns):
            return await self._idle(campaigns, now, seen, lane_empty=True)
        # Campaigns whose template-health window trips pause here (health.py).
        campaigns = await self._health.admit(campaigns, now)
        if not campaigns:
            return False
        due = [c for c in campaigns if c.send_at is None or c.send_at <= now]
        mine = [c for c in due if lane_of(c.priority) == lane]
        # Read afresh on every claim: a tier learned since the last one applies now.
        limit, concurrency = self._limits()
        self._slots.resize(concurrency)
        # About a second of sends: small enough that a pause bites within a second.
        batch = max(concurrency * 2, min(settings.batch_max, int(ctx.pacer.rate)))
        with metrics.STATEMENT_SECONDS.labels("due_rows").time():
            rows = (
                await ctx.store.due_rows(
                    [c.campaign_id for c in mine], math.ceil(batch / len(mine)), now, self.token
                )
                if mine
                else []
            )
        self._due[lane] = len(rows)
        metrics.DUE.labels(self.phone_number_id).set(sum(self._due.values()))
        if not rows:
            return await self._idle(campaigns, now, seen)
        rows = self._fair_order(rows, mine)
        fresh, expired = self._split_expired(rows, now)
        if expired:
            await self._settle_in_doubt(expired)
        # Before the quota plan: a recipient in its quiet hours uses no quota (quiet.py).
        fresh = await self._quiet.admit(fresh, mine, now)
        if not fresh:
            return True
        budget = Budget(
            key=settings.budget_key(self.phone_number_id),
            limit=limit,
            window_start=window_start(
                now, settings.quota_window_seconds, settings.quota_margin_seconds
            ),
            hold_until=sender.hold_until,
        )
        phones = [row.phone for row in fresh]
        ahead = await self._ahead(due, lane, batch, limit, now)

        def decide(snapshot: QuotaSnapshot) -> QuotaPlan:
            plan = plan_behind(
                ahead,
                phones,
                snapshot,
                now,
                window_seconds=settings.quota_window_seconds,
                margin_seconds=settings.quota_margin_seconds,
            )
            metrics.QUOTA_USED.labels(self.phone_number_id).set(snapshot.used + plan.new_contacts)
            metrics.QUOTA_LIMIT.labels(self.phone_number_id).set(snapshot.limit)
            return plan

        with metrics.STATEMENT_SECONDS.labels("reserve").time():
            plan = await ctx.store.reserve(budget, fresh, decide, token=self.token, now=now)
        if plan.defer:
            metrics.DEFERRED.labels(self.phone_number_id).inc(len(plan.defer))
        sending = set(plan.send)
        return _Batch(
            rows=[row for row in fresh if row.phone in sending],
            campaigns={c.campaign_id: c for c in campaigns},
            claimed_at=now,
            lane=lane,
        )

    async def _ahead(
        self, due: list[Campaign], lane: Lane, batch: int, limit: int, now: float
    ) -> list[str]:
        """For a bulk claim, the transactional recipients due on the number: the quota
        plan leaves their room to them (lanes.plan_behind)."""
        first = [c.campaign_id for c in due if lane_of(c.priority) == TRANSACTIONAL]
        if lane != BULK or not first or limit >= UNLIMITED:
            return []
        rows = await self.ctx.store.due_rows(first, math.ceil(batch / len(first)), now, self.token)
        return [row.phone for row in rows]

    def _fair_order(self, rows: list[DueRow], due: list[Campaign]) -> list[DueRow]:
        grouped: dict[uuid.UUID, list[DueRow]] = defaultdict(list)
        for row in rows:
            grouped[row.campaign_id].append(row)
        return interleave([grouped[c.campaign_id] for c in due if c.campaign_id in grouped])

    def _split_expired(self, rows: list[DueRow], now: float) -> tuple[list[DueRow], list[DueRow]]:
        ttl = self.ctx.settings.idempotency_ttl_seconds
        expired = [
            r for r in rows if r.uncertain_since is not None and now - r.uncertain_since > ttl
        ]
        if not expired:
            return rows, []
        gone = {(r.campaign_id, r.phone) for r in expired}
        return [r for r in rows if (r.campaign_id, r.phone) not in gone], expired

    async def _settle_in_doubt(self, rows: list[DueRow]) -> None:
        """Rows whose send may have landed and whose key has expired: adopt the message
        each became where webhooks and the API show it unambiguously (settle.py), and
        leave the rest to an operator as outcome_unknown."""
        ctx = self.ctx
        in_doubt = [
            InDoubt(r.campaign_id, r.phone, self.phone_number_id, r.uncertain_since or 0.0)
            for r in rows
        ]
        sightings = await ctx.store.unknown_sightings(
            self.phone_number_id, sorted({recipient_id(r.phone) for r in rows})
        )
        adopted: list[tuple[uuid.UUID, str, str]] = []
        for (campaign_id, phone), message_id in candidates(in_doubt, sightings).items():
            try:
                state = await message_state(ctx, self.phone_number_id, message_id)
            except KirimTransportError:
                continue  # unconfirmed: it is left to an operator with the rest
            if state is not None and state.to in (None, phone):
                adopted.append((campaign_id, phone, message_id))
        if adopted:
            await ctx.store.adopt_messages(adopted)
            metrics.IN_DOUBT_SETTLED.labels("adopted").inc(len(adopted))
        done = {(campaign_id, phone) for campaign_id, phone, _ in adopted}
        unknown = [r for r in rows if (r.campaign_id, r.phone) not in done]
        if unknown:
            await ctx.store.fail_unknown_outcome(unknown)
            metrics.IN_DOUBT_SETTLED.labels("unknown").inc(len(unknown))
        log.info("in_doubt_settled", adopted=len(adopted), unknown=len(unknown))

    async def _idle(
        self, campaigns: list[Campaign], now: float, seen: int, *, lane_empty: bool = False
    ) -> bool:
        """Nothing to send this time: False once the number has nothing left to do at all,
        else True after waiting for the next due row, a start, or a wake-up.

        A lane with no campaign on the number (`lane_empty`) reads nothing more and waits
        for a wake-up only: a campaign of the lane always comes with one (intake's
        ledger_pending, a state change) and the other lane finishing ends the wait too; the
        bound covers a notification lost with its connection. Without it, the idle lane's
        claims would cost as many statements as the busy one's."""
        ids = [c.campaign_id for c in campaigns]
        if not self._in_flight and not await self.ctx.store.has_pending(ids):
            return False
        wake: tuple[asyncio.Event, ...] = (self.ctx.work_arrived,)
        if lane_empty:
            wake_at = now + _LANE_IDLE_SECONDS
            wake += (self._lane_finished,)
        else:
            wake_at = now + _IDLE_SECONDS
            next_due = await self.ctx.store.next_due_at(ids)
            starts = [c.send_at for c in campaigns if c.send_at is not None and c.send_at > now]
            for moment in (next_due, *starts):
                if moment is not None and moment > now:
                    wake_at = min(wake_at, moment)
        if self.ctx.arrivals != seen:
            return True  # work arrived during this claim: look again at once
        for event in wake:
            event.clear()
        await self._sleep(max(0.0, wake_at - now), *wake)
        return True

    async def _sleep(self, seconds: float, *wake: asyncio.Event) -> None:
        """Sleep, returning early when halted or when one of `wake` is set."""
        await wait_any(self.halt, self.ctx.organisation_stopped, *wake, within=seconds)

    async def _send_all(self, batch: _Batch, tasks: asyncio.TaskGroup) -> None:
        ctx, slots = self.ctx, self._slots
        rows, campaigns, claimed_at = batch.rows, batch.campaigns, batch.claimed_at
        unsent: list[DueRow] = []
        for index, row in enumerate(rows):
            if self._halted():
                unsent.extend(rows[index:])
                break
            if not ctx.campaigns.sendable(row.campaign_id):
                unsent.append(row)
                continue
            await slots.acquire(batch.lane)
            asked = ctx.clock()
            # A transactional send overtakes the bulk ones waiting here (gate.py).
            seq = await ctx.gate.acquire(batch.lane, self.halt, ctx.organisation_stopped)
            metrics.RATE_LIMIT_WAIT.inc(max(0.0, ctx.clock() - asked))
            if seq is None or self._halted() or not ctx.campaigns.sendable(row.campaign_id):
                if seq is not None:
                    ctx.gate.release(seq)
                slots.release()
                unsent.append(row)
                continue
            task = tasks.create_task(self._send(row, campaigns[row.campaign_id], seq, claimed_at))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            task.add_done_callback(lambda _: slots.release())
        if unsent:
            # Retried until the database is back: a row left holding this worker's
            # token would not be claimed again while the worker lives.
            await retrying(ctx.store.release_rows, unsent, self.token)

    async def _send(self, row: DueRow, campaign: Campaign, seq: int, claimed_at: float) -> None:
        ctx = self.ctx
        gauge = self._in_flight_gauge
        gauge.inc()
        started = ctx.clock()
        try:
            decision, message = await self._exchange(row, campaign, seq)
        except Exception as error:  # the isolation boundary of one recipient
            # A bug or a value nobody foresaw, met while sending to this recipient: it
            # is failed alone (it may have been sent) and the others go on.
            ctx.gate.forget(seq)
            decision, message = GiveUp(DISPATCH_ERROR), printable(f"{DISPATCH_ERROR}: {error!r}")
            metrics.API_ANOMALIES.labels(DISPATCH_ERROR).inc()
            log.exception(
                "dispatch_error",
                sender=self.phone_number_id,
                campaign_id=str(row.campaign_id),
                phone=mask_phone(row.phone),
            )
        finally:
            gauge.dec()
        now = ctx.clock()
        metrics.SEND_SECONDS.observe(now - started)
        result = row_result(row, decision, now, claimed_at, message)
        self._writer.add(within_key_window(result, ctx.settings.idempotency_ttl_seconds))
        self._count(decision)
        if isinstance(decision, Stop):
            await self._stop(decision, row.campaign_id)
        elif isinstance(decision, Defer):
            await retrying(ctx.store.hold_sender, self.phone_number_id, now + decision.after)

    async def _exchange(
        self, row: DueRow, campaign: Campaign, seq: int
    ) -> tuple[Decision, str | None]:
        """One request for `row` and what its answer (or its lack of one) decides."""
        ctx = self.ctx
        attempt = row.attempts + 1
        key = idempotency_key(str(row.campaign_id), row.phone, row.generation)
        components = row.components if row.components is not None else campaign.components
        body = template_body(
            row.phone, campaign.template_name, campaign.template_language, components
        )
        try:
            answer = await ctx.client.send_template(self.phone_number_id, key, body)
        except KirimTransportError as error:
            ctx.gate.forget(seq)
            decision = classify_transport_error(error.code, attempt, ctx.settings.retry, ctx.rng)
            return decision, str(error)
        now = ctx.clock()
        if answer.status == 429 and answer.error_code != "quota_exceeded":
            metrics.RATE_LIMITED.inc()
            ctx.gate.throttle(seq, now, answer.retry_after or 1.0)
        else:
            ctx.gate.observe(seq, now, answer.rate_limit, answer.rate_remaining)
        said = Answer(
            answer.status, answer.error_code, answer.retry_after, answer.message_id, answer.anomaly
        )
        anomaly = anomaly_of(said)
        if anomaly is not None:
            metrics.API_ANOMALIES.labels(anomaly).inc()
            log.warning(
                "api_anomaly",
                kind=anomaly,
                sender=self.phone_number_id,
                campaign_id=str(row.campaign_id),
                phone=mask_phone(row.phone),
                status=answer.status,
                attempt=attempt,
                detail=answer.error_message,
            )
        return classify_response(said, attempt, ctx.settings.retry, ctx.rng), answer.error_message

    def _count(self, decision: Decision) -> None:
        match decision:
            case Accepted():
                _ACCEPTED.inc()
            case Retry(code=code):
                metrics.SENDS.labels("retry", code).inc()
                metrics.RETRIES.labels(code).inc()
            case Defer(code=code):
                metrics.SENDS.labels("deferred", code).inc()
            case GiveUp(code=code):
                metrics.SENDS.labels("failed", code).inc()
            case Stop(code=code):
                metrics.SENDS.labels("stopped", code).inc()

    async def _stop(self, decision: Stop, campaign_id: uuid.UUID | None) -> None:
        """Carry out a stop once; the recipients stay pending and nothing is lost."""
        store = self.ctx.store
        if decision.scope is Scope.CAMPAIGN:
            if campaign_id is None or not self.ctx.campaigns.sendable(campaign_id):
                return  # the sends in flight with it answer the same
        elif self._sender_stopped:
            return
        metrics.STOPS.labels(decision.scope.value, decision.code).inc()
        log.error(
            "dispatch_stopped",
            scope=decision.scope.value,
            code=decision.code,
            sender=self.phone_number_id,
            campaign_id=str(campaign_id) if campaign_id else None,
        )
        if decision.scope is Scope.CAMPAIGN and campaign_id is not None:
            await retrying(store.stop_campaign, campaign_id, decision.code)
            self.ctx.campaigns.update({campaign_id: "stopped"})
            return
        await retrying(store.stop_sender, self.phone_number_id, decision.code)
        self._sender_stopped = True
        if decision.scope is Scope.ORGANISATION:
            self.ctx.organisation_stopped.set()
