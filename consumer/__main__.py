"""`python -m consumer`: intake and dispatch, configured from the environment."""

from __future__ import annotations

import asyncio
import os
import sys

from consumer.app import run
from consumer.settings import ConsumerSettings
from runtime.env import SettingsError
from runtime.lifecycle import run_service
from runtime.logs import configure_logging


def main() -> None:
    try:
        settings = ConsumerSettings.from_env(os.environ)
    except SettingsError as error:
        sys.exit(f"consumer: {error}")
    configure_logging(settings.log_level)

    async def serve(stop: asyncio.Event) -> None:
        await run(settings, stop)

    run_service(serve)


if __name__ == "__main__":
    main()
