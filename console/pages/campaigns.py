"""Campaigns (the list), one campaign (live), its failures as CSV, and its actions."""

from __future__ import annotations

import asyncio
import io
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from cli.failures import export_failed
from cli.plan import FitPlan, fit_plan
from cli.quiet_plan import eta_after_openings
from cli.status import trip_text
from console.actions import ACTIONS, CONTROLS
from console.context import Console
from console.guard import action_form
from console.kirim import ApiView
from console.options import campaign_options, paused_by_guard
from console.render import console_of, fragment, not_found, page, parse_uuid, refused, user_of
from console.snapshots import Snapshot
from console.store import CampaignRow
from console.tally import STATUSES, terminal
from consumer.dispatch.quota import number_budget_key

PAGE_SIZE: Final = 25
STATES: Final = ("active", "paused", "stopped", "cancelled")
# A live stream ends after this long; the browser's EventSource reconnects on its own.
STREAM_SECONDS: Final = 300.0
ACTION_TEXT: Final = {
    "pause": "Pause: stop sending until resumed. Nothing is lost.",
    "resume": "Resume: continue sending where it stopped.",
    "cancel": "Cancel: stop for good. Unsent recipients are skipped as cancelled.",
    "retry": "Retry retryable: re-queue every failure with a transient cause "
    "(never the ones that may have been sent).",
}


def _allowed(campaign: CampaignRow) -> list[str]:
    state = campaign.state
    allowed = {
        "active": ["pause", "cancel"],
        "paused": ["resume", "cancel"],
        "stopped": ["resume", "cancel"],
        "cancelled": [],
    }.get(state, [])
    return [*allowed, *([] if state == "cancelled" else ["retry"])]


async def campaigns(request: Request) -> Response:
    console = console_of(request)
    state = request.query_params.get("state") or None
    if state is not None and state not in STATES:
        return refused(request, f"unknown state {state!r}", status_code=400)
    try:
        number = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        number = 1
    total = await console.store.campaign_count(state)
    rows = await console.store.campaigns(state, PAGE_SIZE, (number - 1) * PAGE_SIZE)
    api = await console.kirim.current()
    tiers = {r["phone_number_id"]: r["tier"] for r in await console.store.senders()}
    items = []
    for row in rows:
        snapshot = console.snapshots.get(row.campaign_id)
        eta = None
        if snapshot is not None and snapshot.tally.counts.get("pending") and row.state == "active":
            tier = api.tier_of(row.phone_number_id, tiers.get(row.phone_number_id))
            eta = _plan(console, api, snapshot, tier).eta_seconds
        items.append((row, snapshot, eta))
    return page(
        request,
        "campaigns.html",
        items=items,
        state=state,
        states=STATES,
        page=number,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
        total=total,
        statuses=STATUSES,
        terminal=_terminal,
    )


def _plan(console: Console, api: ApiView, snapshot: Snapshot, tier: int | None) -> FitPlan:
    """The fit plan of what is still pending, at the tier and the API's write budget."""
    return fit_plan(
        snapshot.tally.counts.get("pending", 0),
        tier=tier,
        write_per_minute=api.write_per_minute,
        window_seconds=console.settings.quota_window_seconds,
    )


def _plan_with_openings(
    console: Console,
    api: ApiView,
    plan: FitPlan,
    tier: int | None,
    openings: Sequence[tuple[datetime, int]],
) -> FitPlan:
    """The plan again, with the recipients waiting out their quiet hours sent only once
    their hours end (docs/dispatch.md, "Quiet hours")."""
    asleep = sum(count for _, count in openings)
    awake = fit_plan(
        max(plan.eligible - asleep, 0),
        tier=tier,
        write_per_minute=api.write_per_minute,
        window_seconds=console.settings.quota_window_seconds,
    )
    eta = None
    if awake.eta_seconds is not None and api.write_per_minute:
        now = datetime.now(UTC)
        eta = eta_after_openings(
            awake.eta_seconds,
            [((at - now).total_seconds(), count) for at, count in openings],
            api.write_per_minute / 60.0,
        )
    return replace(plan, eta_seconds=eta)


def _terminal(campaign: CampaignRow, snapshot: Snapshot | None) -> bool | None:
    if snapshot is None:
        return None
    return terminal(snapshot.tally, campaign.chunks_received, campaign.chunk_count)


async def _campaign_or_none(request: Request) -> CampaignRow | None:
    campaign_id = parse_uuid(request.path_params["campaign_id"])
    if campaign_id is None:
        return None
    return await console_of(request).store.campaign(campaign_id)


async def campaign(request: Request) -> Response:
    console = console_of(request)
    row = await _campaign_or_none(request)
    if row is None:
        return not_found(request, f"no campaign {request.path_params['campaign_id']}")
    snapshot = console.snapshots.get(row.campaign_id)
    actions = await console.store.actions(row.campaign_id, 20)
    return page(
        request,
        "campaign.html",
        **await _live_context(request, row, snapshot),
        actions=actions,
        options=campaign_options(row.priority, row.quiet_hours, row.quality_guard),
        done=request.query_params.get("done"),
        allowed=_allowed(row),
        action_text=ACTION_TEXT,
    )


async def _live_context(
    request: Request, row: CampaignRow, snapshot: Snapshot | None
) -> dict[str, Any]:
    """What the live part of the campaign page shows (rendered again on every event)."""
    console = console_of(request)
    settings = console.settings
    sender = await console.store.sender(row.phone_number_id) if row.phone_number_id else None
    api = await console.kirim.current()
    account = api.accounts.get(row.phone_number_id or "")
    tier = api.tier_of(row.phone_number_id, (sender or {}).get("tier"))
    gauge = (
        console.quota.get(number_budget_key(row.phone_number_id)) if row.phone_number_id else None
    )
    plan = _plan(console, api, snapshot, tier) if snapshot is not None else None
    openings = await console.store.quiet_openings(row.campaign_id) if row.quiet_hours else []
    guard_paused = paused_by_guard(row.state, row.state_reason)
    trip = await console.store.quality_trip(row.campaign_id) if guard_paused else None
    if plan is not None and openings:
        plan = _plan_with_openings(console, api, plan, tier, openings)
    return {
        "campaign": row,
        # Read again with every live update, so a trip shows while someone watches.
        "guard_paused": guard_paused,
        "guard_trip": trip_text(trip) if trip is not None else None,
        "snapshot": snapshot,
        "tally": snapshot.tally if snapshot else None,
        "statuses": STATUSES,
        "terminal": _terminal(row, snapshot),
        "sender": sender,
        "account": account,
        "tier": tier,
        "quota_used": gauge.used if gauge else None,
        "window_seconds": settings.quota_window_seconds,
        "plan": plan,
        "quiet_openings": openings,
        "api_problem": api.problem,
        "eta_at": (
            datetime.now(UTC) + timedelta(seconds=plan.eta_seconds)
            if plan and plan.eta_seconds is not None and snapshot and snapshot.tally.in_progress
            else None
        ),
    }


async def live(request: Request) -> Response:
    """Server-sent events: the live block of the campaign page, each time it is recounted."""
    row = await _campaign_or_none(request)
    if row is None:
        return not_found(request, f"no campaign {request.path_params['campaign_id']}")
    console = console_of(request)

    async def next_snapshot(than: float) -> Snapshot | None:
        """The next snapshot, or None at once when the server stops."""
        waiting = asyncio.create_task(console.snapshots.newer(row.campaign_id, than, within=15.0))
        stopping = asyncio.create_task(console.stopping.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not waiting.done():
            waiting.cancel()
            return None
        return waiting.result()

    async def events() -> AsyncIterator[str]:
        last = 0.0
        ends = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < ends and not console.stopping.is_set():
            if await request.is_disconnected():
                return
            snapshot = await next_snapshot(last)
            if console.stopping.is_set():
                return
            if snapshot is None or snapshot.taken_at <= last:
                yield ": still counting\n\n"  # a comment keeps proxies from closing the stream
                continue
            last = snapshot.taken_at
            current = await console.store.campaign(row.campaign_id) or row
            context = await _live_context(request, current, snapshot)
            html = fragment(request, "_live.html", **context)
            yield "event: progress\n" + "".join(f"data: {line}\n" for line in html.splitlines())
            yield "\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def failures_csv(request: Request) -> Response:
    """Exactly `broadcast failed <campaign> --csv`: the CLI's own export."""
    row = await _campaign_or_none(request)
    if row is None:
        return not_found(request, f"no campaign {request.path_params['campaign_id']}")
    user = user_of(request)
    if not user.role.sees_numbers:
        return refused(request, f"{user.name} is a viewer: the export holds full numbers")
    buffer = io.StringIO()
    await export_failed(console_of(request).settings.cli(user.name), row.campaign_id, buffer)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="failed-{row.campaign_id}.csv"'},
    )


async def confirm(request: Request) -> Response:
    """The confirmation step of an action: what it does, an optional reason, one button."""
    action = request.path_params["action"]
    row = await _campaign_or_none(request)
    if row is None or action not in ACTIONS:
        return not_found(request, "no such campaign or action")
    if not user_of(request).role.may_act:
        return refused(request, f"{user_of(request).name} is a viewer: viewers cannot act")
    return page(
        request,
        "confirm.html",
        campaign=row,
        action=action,
        text=ACTION_TEXT[action],
        with_reason=action in CONTROLS,
    )


async def act(request: Request) -> Response:
    action = request.path_params["action"]
    row = await _campaign_or_none(request)
    if row is None or action not in ACTIONS:
        return not_found(request, "no such campaign or action")
    form = await action_form(request)
    if isinstance(form, Response):
        return form
    outcome = await console_of(request).actions.act(
        user_of(request), action, row.campaign_id, str(form.get("reason", "")) or None
    )
    # The page shows the latest entry of the audit trail, which is this outcome.
    done = "ok" if outcome.ok else "refused"
    return RedirectResponse(f"/campaigns/{row.campaign_id}?done={done}", status_code=303)
