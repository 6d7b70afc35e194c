"""Act on messages that were accepted and failed later (reported by webhook).

The projector folds statuses into `message_statuses` and appends each message
reported failed to `status_failures`; this loop reads that backlog from a cursor
(`consumer.dispatch.failures`), finds accepted messages whose fold says `failed`
while the ledger still says `queued`, and carries out the policy: give up (and
suppress), send again under a new key generation (retry, quota deferral), or stop
the campaign or sender with the recipient kept pending. Each action moves the row
out of `queued`, so running it twice changes nothing more. One pass runs at a time
across instances (an advisory lock); a pass that is cut short leaves the cursor
where it was, and the next one reads the same entries again.

Before a re-send, the failure must be `failure_recheck_seconds` old and the API,
asked for the message's current status, must still call it failed: a `delivered`
that follows a `failed` (multi-device) means the recipient has it (consumer.
dispatch.settle).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from consumer.dispatch import metrics
from consumer.dispatch.context import DispatchContext
from consumer.dispatch.failures import (
    Fate,
    cursor_after,
    fate,
    look_again_at,
    unknown_horizon,
)
from consumer.dispatch.health import TemplateHealth
from consumer.dispatch.lookup import message_state
from consumer.dispatch.policy import (
    Decision,
    Defer,
    GiveUp,
    Retry,
    Scope,
    Stop,
    async_code_of,
    classify_async_failure,
)
from consumer.dispatch.settle import Recheck, after_recheck, recheck_due
from consumer.dispatch.store import AsyncFailure
from consumer.kirim.client import KirimTransportError
from runtime.db import TRANSIENT_ERRORS
from runtime.events import wait_any
from runtime.logs import get_logger

log = get_logger(__name__)

_BATCH = 1000
_RECHECKS_IN_FLIGHT = 10


def predates_resume(scope: Scope, failure: AsyncFailure) -> bool:
    """True when the failed message was accepted before the campaign's (or the sender's)
    state last changed: a late report of a problem an operator has since resumed from."""
    changed = failure.campaign_changed_at if scope is Scope.CAMPAIGN else failure.sender_changed_at
    return failure.queued_at is not None and changed is not None and failure.queued_at < changed


class FailureReconciler:
    def __init__(self, ctx: DispatchContext) -> None:
        self.ctx = ctx
        self.wake = asyncio.Event()
        self._health = TemplateHealth(ctx)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Cleared before the pass: a NOTIFY (status_failed) during it means another.
            self.wake.clear()
            try:
                while await self.reconcile_once() > 0 and not stop.is_set():
                    pass
            except TRANSIENT_ERRORS as error:
                log.warning("reconcile_retry", error=repr(error))
            await wait_any(stop, self.wake, within=self.ctx.settings.reconcile_interval_seconds)

    async def reconcile_once(self) -> int:
        """One pass: the failures past the cursor and the waiting ones come due, each
        acted on, finished or kept waiting, then the cursor moved past them. Returns how
        many entries it took (0: none, or another instance's pass is running), so the
        caller goes on while there are more and sleeps otherwise."""
        ctx = self.ctx
        async with ctx.store.reconciler_turn() as backlog:
            if backlog is None:
                return 0
            now = ctx.clock()
            cursor, entries = await backlog.read(now, _BATCH)
            if not entries:
                return 0
            settings = ctx.settings
            horizon = unknown_horizon(settings.idempotency_ttl_seconds)
            fates = [fate(entry, now, horizon) for entry in entries]
            failures = [
                entry.failure
                for entry, fated in zip(entries, fates, strict=True)
                if fated is Fate.ACT and entry.failure is not None
            ]
            # Counted at first sight, before any grace period: the breaker wants to know.
            await self._health.after_failures(failures, now)
            rechecks = await self._act(failures, now)
            waits = {
                f.message_id for f, r in zip(failures, rechecks, strict=True) if r is Recheck.WAIT
            }
            keep: list[tuple[int, float]] = []
            finished: list[int] = []
            for entry, fated in zip(entries, fates, strict=True):
                when = look_again_at(
                    entry,
                    fated,
                    recheck_waits=entry.message_id in waits,
                    now=now,
                    grace_seconds=settings.failure_recheck_seconds,
                    interval_seconds=settings.reconcile_interval_seconds,
                )
                if when is None:
                    finished.append(entry.seq)
                else:
                    keep.append((entry.seq, when))
            await backlog.settle(cursor_after(cursor, entries), keep, finished)
            return len(entries)

    async def _act(self, failures: Sequence[AsyncFailure], now: float) -> list[Recheck]:
        """Carry out the policy for each failure whose recheck says so; returns each
        one's recheck (WAIT: not acted on, to be looked at again)."""
        ctx = self.ctx
        if not failures:
            return []
        resend: list[tuple[AsyncFailure, float, str | None]] = []
        give_up: list[tuple[AsyncFailure, str]] = []
        suppress: list[tuple[str, str]] = []
        stopped: set[tuple[Scope, uuid.UUID, str]] = set()
        decisions = [
            classify_async_failure(
                f.error_code, f.provider_code, f.generation, ctx.settings.retry, ctx.rng
            )
            for f in failures
        ]
        rechecks = await self._rechecks(failures, decisions, now)
        delivered = [
            f.message_id for f, r in zip(failures, rechecks, strict=True) if r is Recheck.DELIVERED
        ]
        if delivered:
            await ctx.store.delivered_after_failure(delivered)
            metrics.DELIVERED_AFTER_FAILURE.inc(len(delivered))
            log.info("delivered_after_failure", messages=len(delivered))
        for failure, decision, recheck in zip(failures, decisions, rechecks, strict=True):
            if recheck is not Recheck.RESEND:
                continue
            code = async_code_of(failure.error_code, failure.provider_code)
            match decision:
                case GiveUp(code=final, suppress=also_suppress):
                    give_up.append((failure, final))
                    if also_suppress:
                        suppress.append((failure.phone, final))
                    action = "suppressed" if also_suppress else "failed"
                case Retry(after=after):
                    resend.append((failure, now + after, "retry_backoff"))
                    action = "retry"
                case Defer(after=after):
                    await ctx.store.hold_sender(failure.phone_number_id, now + after)
                    resend.append((failure, now + after, "deferred_quota"))
                    action = "deferred"
                case Stop(scope=scope) if predates_resume(scope, failure):
                    # Accepted before an operator lifted an earlier stop: old news, so
                    # only the recipient goes out again.
                    resend.append((failure, now, None))
                    action = "resent_after_resume"
                case Stop(scope=scope):
                    # Stop first, then put the recipient back: it must not go out again
                    # before an operator resumes the campaign or the sender.
                    if (scope, failure.campaign_id, failure.phone_number_id) not in stopped:
                        await self._stop(scope, code, failure)
                        stopped.add((scope, failure.campaign_id, failure.phone_number_id))
                    resend.append((failure, now, None))
                    action = "stopped"
                case _:
                    raise AssertionError(f"unexpected decision {decision!r}")
            metrics.ASYNC_FAILURES.labels(code, action).inc()
        if suppress:
            await ctx.store.suppress(suppress)
        if give_up:
            await ctx.store.fail_after_failure(give_up)
        if resend:
            await ctx.store.resend_after_failure(resend)
            ctx.work_arrived.set()
        return rechecks

    async def _rechecks(
        self, failures: Sequence[AsyncFailure], decisions: Sequence[Decision], now: float
    ) -> list[Recheck]:
        """For each failure: act now (RESEND), not yet (WAIT), or never (DELIVERED)."""
        grace = self.ctx.settings.failure_recheck_seconds
        slots = asyncio.Semaphore(_RECHECKS_IN_FLIGHT)

        async def recheck(failure: AsyncFailure, decision: Decision) -> Recheck:
            if grace <= 0 or not isinstance(decision, Retry | Defer):
                return Recheck.RESEND  # nothing goes out again, or checking is off
            if not recheck_due(failure.failed_at, now, grace):
                return Recheck.WAIT
            async with slots:
                try:
                    state = await message_state(
                        self.ctx, failure.phone_number_id, failure.message_id
                    )
                except KirimTransportError as error:
                    log.warning("failure_recheck_retry", error=str(error))
                    return Recheck.WAIT
            return after_recheck(state.status if state else None)

        return list(
            await asyncio.gather(*(recheck(f, d) for f, d in zip(failures, decisions, strict=True)))
        )

    async def _stop(self, scope: Scope, code: str, failure: AsyncFailure) -> None:
        store = self.ctx.store
        metrics.STOPS.labels(scope.value, code).inc()
        log.error(
            "dispatch_stopped",
            scope=scope.value,
            code=code,
            sender=failure.phone_number_id,
            campaign_id=str(failure.campaign_id),
        )
        if scope is Scope.CAMPAIGN:
            await store.stop_campaign(failure.campaign_id, code)
            self.ctx.campaigns.update({failure.campaign_id: "stopped"})
            return
        await store.stop_sender(failure.phone_number_id, code)
        if scope is Scope.ORGANISATION:
            self.ctx.organisation_stopped.set()
