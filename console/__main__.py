"""`python -m console`: the operator console (docs/console.md)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

from console.service import run
from console.settings import ConsoleSettings
from runtime.lifecycle import load_settings, run_service
from runtime.logs import configure_logging
from runtime.usage import service_parser

DESCRIPTION = (
    "The operator console: every campaign's live progress, its failures and the actions "
    "pause, resume, cancel and retry, the dead letters and the senders, on "
    "CONSOLE_HOST:CONSOLE_PORT (docs/console.md). Nothing without a credential: set "
    "CONSOLE_TOKEN (one operator) or CONSOLE_USERS (name:role:token,..., roles viewer and "
    "operator). It reads the views the CLI reads and acts through the CLI's own control "
    "events and statements. Takes no arguments: every setting is an environment variable."
)


def _for_help(env: Mapping[str, str]) -> ConsoleSettings:
    return ConsoleSettings.from_env(env, for_help=True)


def main(argv: list[str] | None = None) -> None:
    service_parser("python -m console", DESCRIPTION, _for_help).parse_args(argv)
    settings = load_settings("console", ConsoleSettings.from_env, os.environ)
    configure_logging(settings.log_level)

    async def _main(stop: asyncio.Event) -> None:
        await run(settings, stop)

    run_service(_main, service="console")


if __name__ == "__main__":
    main()
