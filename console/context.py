"""What every page handler reaches through `request.app.state.console`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.templating import Jinja2Templates

from console.actions import Actions
from console.deadletters import DeadLetterTail
from console.kirim import KirimView
from console.quota import QuotaGauges
from console.settings import ConsoleSettings
from console.snapshots import Snapshots
from console.store import ConsoleStore


@dataclass(frozen=True, slots=True)
class Console:
    settings: ConsoleSettings
    store: ConsoleStore
    snapshots: Snapshots
    quota: QuotaGauges
    actions: Actions
    kirim: KirimView
    dead_letters: DeadLetterTail
    templates: Jinja2Templates
    # Set when the server stops: live streams end at once instead of holding the
    # graceful shutdown until its timeout.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
