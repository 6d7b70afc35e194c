"""The one shape every service's `run(settings)` follows, and how its process exits.

SIGTERM/SIGINT only set a stop event; the service stops taking new work,
drains within a grace period, commits and closes its resources in reverse
order (an `AsyncExitStack`).

Exit status, the same for every service (README.md, "Running the services"):
`EXIT_OK` (0) after a clean stop, `EXIT_CRASH` (1) when something unexpected
raised (Python's own status for an uncaught exception, traceback included), and
`EXIT_CONFIG` (2) for bad configuration: a `SettingsError` from `from_env` or
raised at start (a port in use, an unknown sender), printed as one line on
stderr without a traceback. 2 is also what argparse uses for a bad argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, NoReturn, TypeVar

from runtime.env import SettingsError

EXIT_OK: Final = 0
EXIT_CRASH: Final = 1
EXIT_CONFIG: Final = 2

_S = TypeVar("_S")


def exit_misconfigured(service: str, error: SettingsError) -> NoReturn:
    """One line naming the variable, then exit 2: a restart would not help, a fix would."""
    print(f"{service}: {error}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG)


def load_settings(
    service: str, from_env: Callable[[Mapping[str, str]], _S], env: Mapping[str, str]
) -> _S:
    """`from_env(env)`, or exit 2 with the reason."""
    try:
        return from_env(env)
    except SettingsError as error:
        exit_misconfigured(service, error)


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def _settings_error(error: BaseException) -> SettingsError | None:
    """The configuration error behind `error`, also when a task group wrapped it alone."""
    if isinstance(error, SettingsError):
        return error
    if isinstance(error, BaseExceptionGroup):
        matched, rest = error.split(SettingsError)
        if matched is not None and rest is None:
            first = matched.exceptions[0]
            return _settings_error(first)
    return None


def run_service(main: Callable[[asyncio.Event], Awaitable[None]], *, service: str) -> None:
    """Run `main(stop_event)` on uvloop when available, with signal handling installed.

    Returns after a clean stop; a `SettingsError` at start exits 2 (see the module
    docstring); anything else propagates, and Python exits 1 with its traceback.
    """

    async def _wrapper() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await main(stop)

    try:
        try:
            import uvloop  # noqa: PLC0415
        except ImportError:
            asyncio.run(_wrapper())
        else:
            uvloop.run(_wrapper())
    except (SettingsError, BaseExceptionGroup) as error:
        misconfigured = _settings_error(error)
        if misconfigured is None:
            raise
        exit_misconfigured(service, misconfigured)
