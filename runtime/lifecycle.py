"""The one shape every service's `run(settings)` follows.

SIGTERM/SIGINT only set a stop event; the service stops taking new work,
drains within a grace period, commits and closes its resources in reverse
order (an `AsyncExitStack`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def run_service(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop_event)` on uvloop when available, with signal handling installed."""

    async def _wrapper() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await main(stop)

    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(_wrapper())
    except ImportError:
        asyncio.run(_wrapper())
