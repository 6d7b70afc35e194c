"""What every sender worker shares within one dispatcher instance."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from consumer.dispatch.gate import PacerGate
from consumer.dispatch.pacing import RatePacer
from consumer.dispatch.settings import DispatchSettings
from consumer.dispatch.store import DispatchStore
from consumer.kirim.client import Account, KirimClient


@dataclass
class CampaignStates:
    """Campaign states as last seen; NOTIFYs from intake update them within a second."""

    states: dict[uuid.UUID, str] = field(default_factory=dict)

    def sendable(self, campaign_id: uuid.UUID) -> bool:
        return self.states.get(campaign_id, "active") == "active"

    def update(self, states: dict[uuid.UUID, str]) -> None:
        self.states.update(states)


@dataclass
class AccountBook:
    """Accounts from GET /v1/accounts, refreshed by the dispatcher."""

    accounts: dict[str, Account] = field(default_factory=dict)

    def get(self, phone_number_id: str) -> Account | None:
        return self.accounts.get(phone_number_id)


@dataclass
class DispatchContext:
    settings: DispatchSettings
    store: DispatchStore
    client: KirimClient
    pacer: RatePacer
    campaigns: CampaignStates
    accounts: AccountBook
    clock: Callable[[], float]
    rng: random.Random
    # Paces GETs (settling in-doubt sends, checking failures) to the read budget.
    read_pacer: RatePacer = field(default_factory=lambda: RatePacer(limit_per_minute=600))
    # Set to stop every sender (the API key or the payment is gone).
    organisation_stopped: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by the ownership round or a NOTIFY to wake idle workers early.
    work_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    # Counts the wake-ups, so a loop that was busy when one came (and another cleared
    # the event) still sees it before it sleeps.
    arrivals: int = 0
    # The write tokens of `pacer`, handed out by priority lane (gate.py).
    gate: PacerGate = field(init=False)

    def __post_init__(self) -> None:
        self.gate = PacerGate(self.pacer, self.settings.bulk_min_share, self.clock)

    def wake(self) -> None:
        """New work may be due: wake the idle sender loops."""
        self.arrivals += 1
        self.work_arrived.set()
